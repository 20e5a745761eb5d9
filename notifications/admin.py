"""Admin screens: endpoints (no secret shown), deliveries with attempts, addresses, emails, suppressions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from app.errors import ApiError
from notifications.models import (
    Delivery,
    DeliveryAttempt,
    EmailNotification,
    NotificationAddress,
    Suppression,
    WebhookEndpoint,
)
from notifications.services.replay import delivery_retry, endpoint_ping


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "retailer", "url", "enabled", "consecutive_failures", "last_success_at")
    list_filter = ("enabled",)
    search_fields = ("url",)
    exclude = ("secret_encrypted", "previous_secret_encrypted")
    readonly_fields = ("retailer", "consecutive_failures", "circuit_open_until", "first_failure_at", "last_success_at")
    actions = ["send_ping"]

    @admin.action(permissions=["change"], description="Send a signed test event (ping)")
    def send_ping(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            endpoint_ping(endpoint=endpoint)
        messages.success(request, f"Queued a ping to {queryset.count()} endpoint(s).")


class DeliveryAttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "attempted_at", "status_code", "duration_ms", "outcome", "error", "response_excerpt")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "endpoint", "event", "state", "attempts", "next_attempt_at")
    list_filter = ("state",)
    readonly_fields = ("event", "endpoint", "attempts", "created_at", "finished_at")
    inlines = [DeliveryAttemptInline]
    actions = ["retry"]

    @admin.action(permissions=["change"], description="Send the selected deliveries again now")
    def retry(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        retried = 0
        for delivery in queryset:
            try:
                delivery_retry(delivery=delivery)
            except ApiError:
                continue  # in flight right now: its attempt decides
            retried += 1
        messages.success(request, f"Queued {retried} delivery(ies) again; the bulk replay is on the API.")


@admin.register(NotificationAddress)
class NotificationAddressAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("email", "retailer", "confirmed_at", "created_at")
    exclude = ("token_hash",)


@admin.register(EmailNotification)
class EmailNotificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "kind", "to_email", "state", "attempts", "next_attempt_at", "sent_at")
    list_filter = ("state", "kind")


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("email", "reason", "created_at")
    search_fields = ("email",)
