from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Background work: outbox, dead letters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from workers import signals

        signals.connect()
