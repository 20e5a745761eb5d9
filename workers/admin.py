"""Operator screens: dead letters (inspect, replay) and the outbox (read-only)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from workers.models import DeadLetter, OutboxMessage
from workers.services import DeadLetterNotReplayableError, deadletter_replay


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "task_name",
        "idempotency_key",
        "status",
        "failures",
        "replays",
        "last_failed_at",
        "short_error",
    )
    list_filter = ("status", "task_name", "queue")
    search_fields = ("idempotency_key", "task_id", "exception")
    ordering = ("-last_failed_at",)
    actions = ("replay",)

    @admin.display(description="error")
    def short_error(self, letter: DeadLetter) -> str:
        return letter.exception[:100]

    @admin.action(description="Replay selected dead letters (same idempotency key)")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        replayed, skipped = 0, 0
        for letter_id in queryset.values_list("id", flat=True):
            try:
                deadletter_replay(deadletter_id=letter_id, actor=f"staff:{request.user.get_username()}")
                replayed += 1
            except DeadLetterNotReplayableError:
                skipped += 1
        self.message_user(request, f"{replayed} queued for replay; {skipped} skipped (not open).", messages.INFO)


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ("id", "task_name", "idempotency_key", "status", "publish_attempts", "created_at", "done_at")
    list_filter = ("status", "task_name")
    search_fields = ("idempotency_key", "request_id")
    ordering = ("-id",)
