from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    verbose_name = "Backups: snapshots, verify, restore"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from backups import restoring, verifying  # noqa: F401  (they register their job runners)
