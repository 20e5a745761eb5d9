"""Admin for operators: backups with their progress (read-only rows), and an action that
starts a backup for the selected retailers' backups, through the same service as the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from backups.models import Backup, BackupPolicy, Job, Prune
from backups.progress import backup_eta_seconds, backup_rate
from backups.pruning import prune_request
from backups.services import backup_start


def _percent(done: int, total: int) -> str:
    return f"{100 * done / total:.0f} %" if total else "-"


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "retailer", "state", "files", "bytes_progress", "rate", "eta", "created_at", "finished_at")
    list_filter = ("state",)
    search_fields = ("retailer__name",)
    ordering = ("-created_at", "-id")
    actions = ("back_up_again", "prune_repositories")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="files")
    def files(self, backup: Backup) -> str:
        final = "" if backup.total_final else "+"
        return f"{backup.files_done} / {backup.files_total}{final}"

    @admin.display(description="bytes")
    def bytes_progress(self, backup: Backup) -> str:
        return _percent(backup.bytes_done, backup.bytes_total)

    @admin.display(description="rate (MB/s)")
    def rate(self, backup: Backup) -> str:
        rate = backup_rate(backup)
        return "-" if rate is None else f"{rate / 1e6:.1f}"

    @admin.display(description="ETA (s)")
    def eta(self, backup: Backup) -> str:
        eta = backup_eta_seconds(backup)
        return "-" if eta is None else f"{eta:.0f}"

    @admin.action(description="Back up these retailers now")
    def back_up_again(self, request: HttpRequest, queryset: QuerySet[Backup]) -> None:
        self._per_retailer(request, queryset, "backup", backup_start)

    @admin.action(description="Prune these retailers' repositories (retention, unreferenced data)")
    def prune_repositories(self, request: HttpRequest, queryset: QuerySet[Backup]) -> None:
        self._per_retailer(request, queryset, "prune", prune_request)

    def _per_retailer(
        self, request: HttpRequest, queryset: QuerySet[Backup], noun: str, start: Callable[..., tuple[Any, bool]]
    ) -> None:
        """Start ``noun`` (through its service, as the API does) once per retailer of the selection."""
        for retailer_id in sorted(set(queryset.values_list("retailer_id", flat=True))):
            row, created = start(retailer_id=retailer_id)
            verb = "started" if created else "already open"
            self.message_user(request, f"Retailer {retailer_id}: {noun} {row.pk} {verb}.", messages.INFO)


@admin.register(Prune)
class PruneAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "retailer", "state", "phase", "backups_expired", "chunks_deleted", "bytes_freed")
    list_filter = ("state",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BackupPolicy)
class BackupPolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Retention and the daily schedule, editable by operators (the API's PATCH for retailers)."""

    list_display = ("retailer", "keep_last", "keep_daily", "keep_weekly", "schedule_hour", "last_scheduled_on")
    fields = ("retailer", "keep_last", "keep_daily", "keep_weekly", "schedule_hour", "last_scheduled_on")
    readonly_fields = ("last_scheduled_on",)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "kind", "backup", "state", "items_done", "bytes_done", "error_code", "created_at")
    list_filter = ("kind", "state")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
