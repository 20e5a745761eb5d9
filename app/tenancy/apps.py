from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "app.tenancy"
    label = "tenancy"
    verbose_name = "Tenancy: retailers, keys, audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import app.schema  # noqa: F401  registers the OpenAPI authentication extension
