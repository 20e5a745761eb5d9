from django.apps import AppConfig


class PricingConfig(AppConfig):
    name = "pricing"
    verbose_name = "Pricing: catalog, rules, snapshots"
    default_auto_field = "django.db.models.BigAutoField"
