"""Catalog, rules, the inputs they read, precomputed price snapshots, history, repricing jobs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import models
from django.utils import timezone

from app.tenancy.models import Retailer
from pricing.rules.guardrails import DEFAULT_MAX_DAILY_CHANGE_PERCENT


def money(**options: Any) -> models.DecimalField:  # type: ignore[type-arg]
    """An amount column: up to 12 integer digits, 4 decimals (enough for every ISO 4217 exponent)."""
    return models.DecimalField(max_digits=18, decimal_places=4, **options)


class Product(models.Model):
    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="products")
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    base_price = money()
    cost = money(null=True, blank=True)
    list_price = money(null=True, blank=True, help_text="The ceiling of every price.")
    inventory = models.IntegerField(null=True, blank=True)
    active = models.BooleanField(default=True, help_text="Inactive products are answered as missing.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "sku"], name="uniq_product_sku")]

    def __str__(self) -> str:
        return self.sku


class PricingPolicy(models.Model):
    """Guardrails and rounding of one retailer; absent means the defaults below."""

    retailer = models.OneToOneField(Retailer, on_delete=models.CASCADE, related_name="pricing_policy")
    min_margin_percent = models.DecimalField(
        max_digits=9, decimal_places=4, default=Decimal(0), help_text="Floor = cost x (1 + margin / 100)."
    )
    max_daily_change_percent = models.DecimalField(
        max_digits=9,
        decimal_places=4,
        null=True,
        blank=True,
        default=DEFAULT_MAX_DAILY_CHANGE_PERCENT,
        help_text="Empty: no limit.",
    )
    rounding_step = money(null=True, blank=True, help_text="Round to k x step + ending; empty: no rounding.")
    rounding_ending = money(default=Decimal(0))
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "pricing policies"

    def __str__(self) -> str:
        return f"policy of retailer {self.retailer_id}"


class Rule(models.Model):
    class Kind(models.TextChoices):
        DEMAND = "demand"
        INVENTORY = "inventory"
        COMPETITOR = "competitor"
        SCHEDULE = "schedule"
        EXPERIMENT = "experiment"

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="pricing_rules")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    name = models.CharField(max_length=100)
    position = models.IntegerField(default=0, help_text="Rules apply in ascending position, then id.")
    enabled = models.BooleanField(default=True)
    skus = models.JSONField(default=list, blank=True, help_text="SKUs the rule applies to; empty: all.")
    params = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["retailer", "position"])]

    def __str__(self) -> str:
        return f"{self.kind}: {self.name}"


class DemandSignal(models.Model):
    """1.0000 = normal demand for the SKU, 2.0000 = double (set by analytics or the API)."""

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE)
    sku = models.CharField(max_length=64)
    signal = models.DecimalField(max_digits=10, decimal_places=4)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "sku"], name="uniq_demand_signal")]

    def __str__(self) -> str:
        return f"{self.sku} demand {self.signal}"


class CompetitorPrice(models.Model):
    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE)
    sku = models.CharField(max_length=64)
    competitor = models.CharField(max_length=100)
    price = money()
    observed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "sku", "competitor"], name="uniq_competitor_price")]

    def __str__(self) -> str:
        return f"{self.sku} at {self.competitor}: {self.price}"


class PriceSnapshot(models.Model):
    """The precomputed answer for one (retailer, SKU): a price per variant and the steps behind it.

    ``prices`` are the rules' output; ``effective_price`` is what was last announced
    (the base price while the retailer has paused dynamic pricing).
    """

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="price_snapshots")
    sku = models.CharField(max_length=64)
    active = models.BooleanField(default=True)
    currency = models.CharField(max_length=3)
    base_price = money()
    prices = models.JSONField(default=dict, help_text='{"variant or _": "19.99"}')
    experiment = models.JSONField(null=True, blank=True, help_text='{"key": ..., "variants": [[name, weight]]}')
    steps = models.JSONField(default=dict)
    effective_price = money()
    effective_prices = models.JSONField(
        default=dict,
        blank=True,
        help_text='Under an experiment, what each variant\'s shoppers were last shown: {"variant": "19.99"}.',
    )
    version = models.BigIntegerField(default=1)
    anchor_price = money(null=True, blank=True, help_text="Price at the start of the day.")
    anchor_date = models.DateField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True, help_text="Next schedule boundary, if any.")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "sku"], name="uniq_price_snapshot")]
        indexes = [
            models.Index(fields=["valid_until"], name="snapshot_valid_until"),
            models.Index(fields=["computed_at"], name="snapshot_computed_at"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} v{self.version}"


class PriceHistory(models.Model):
    """One row per change of a price shoppers see.

    ``variant`` is empty for the price shown without an experiment variant (the default, which
    ``prices.changed`` announces); under an experiment each variant whose price changed gets a
    row of its own too, so each variant's 30-day reference can be answered.
    """

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE)
    sku = models.CharField(max_length=64)
    variant = models.CharField(max_length=32, default="", blank=True)
    price = money()
    currency = models.CharField(max_length=3)
    version = models.BigIntegerField()
    reason = models.CharField(max_length=100)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "price history"
        indexes = [models.Index(fields=["retailer", "sku", "variant", "at"], name="price_history_variant_at")]

    def __str__(self) -> str:
        return f"{self.sku} {self.price} {self.currency} at {self.at:%Y-%m-%d %H:%M}"


class RepricingJob(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="repricing_jobs")
    reason = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    shards_total = models.PositiveIntegerField(default=0)
    shards_done = models.PositiveIntegerField(default=0)
    skus_total = models.PositiveIntegerField(default=0)
    skus_changed = models.PositiveIntegerField(default=0)
    dedup_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"job {self.pk} ({self.reason}, {self.status})"


class RepricingShard(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"

    job = models.ForeignKey(RepricingJob, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField()
    skus = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    skus_changed = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="uniq_shard_index")]

    def __str__(self) -> str:
        return f"shard {self.index} of job {self.job_id}"
