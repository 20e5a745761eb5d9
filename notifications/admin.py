"""Admin screens: endpoints (no secret shown), deliveries with attempts, addresses, emails, suppressions."""

from __future__ import annotations

from django.contrib import admin

from notifications.models import (
    Delivery,
    DeliveryAttempt,
    EmailNotification,
    NotificationAddress,
    Suppression,
    WebhookEndpoint,
)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "retailer", "url", "enabled", "consecutive_failures", "last_success_at")
    list_filter = ("enabled",)
    search_fields = ("url",)
    exclude = ("secret_encrypted", "previous_secret_encrypted")
    readonly_fields = ("retailer", "consecutive_failures", "circuit_open_until", "first_failure_at", "last_success_at")


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


@admin.register(NotificationAddress)
class NotificationAddressAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("email", "retailer", "confirmed_at", "created_at")
    exclude = ("token_hash",)


@admin.register(EmailNotification)
class EmailNotificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "kind", "to_email", "state", "attempts", "sent_at")
    list_filter = ("state", "kind")


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("email", "reason", "created_at")
    search_fields = ("email",)
