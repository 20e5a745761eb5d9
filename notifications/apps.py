from __future__ import annotations

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The outbox subscribers (fan-out) and anymail's tracking receiver register on import.
        from notifications import subscribers, tracking  # noqa: F401
