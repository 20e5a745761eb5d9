"""Raw shopper events (the dedup memory) and per-SKU, per-minute counters derived from them.

Both tables are written only by :func:`analytics.services.events_ingest`, in one
statement: a raw row is inserted at most once per (retailer, event id), and the
counters grow only by the rows that statement actually inserted.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from app.tenancy.models import Retailer


class EventType(models.IntegerChoices):
    PAGE_VIEW = 0, "page_view"
    PRODUCT_VIEW = 1, "product_view"
    ADD_TO_CART = 2, "add_to_cart"
    PURCHASE = 3, "purchase"


class RawEvent(models.Model):
    """One shopper event as received; kept for ``ANALYTICS_RAW_RETENTION_DAYS`` (the dedup window)."""

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, db_index=False)
    event_id = models.UUIDField(help_text="Client-generated id; the same id is counted once.")
    type = models.PositiveSmallIntegerField(choices=EventType.choices)
    sku = models.CharField(max_length=64, blank=True, default="", help_text="Empty for page views.")
    variant = models.CharField(max_length=32, blank=True, default="", help_text="Experiment variant shown.")
    session = models.CharField(max_length=128)
    occurred_at = models.DateTimeField(help_text="The client's timestamp, never later than received_at.")
    received_at = models.DateTimeField(default=timezone.now)
    quantity = models.PositiveIntegerField(null=True, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    demand_weight = models.PositiveSmallIntegerField(
        default=0, help_text="What the event added to the demand input (analytics/demand_caps.py)."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "event_id"], name="uniq_rawevent_retailer_event")]
        indexes = [
            models.Index(fields=["retailer", "occurred_at"], name="rawevent_retailer_occurred"),
            models.Index(fields=["occurred_at"], name="rawevent_occurred"),
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} {self.sku} {self.event_id}"


class SkuMinuteCount(models.Model):
    """Events per (retailer, SKU, minute, variant); page views are counted under the empty SKU."""

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, db_index=False)
    sku = models.CharField(max_length=64, blank=True, default="")
    minute = models.DateTimeField(help_text="Start of the minute (UTC) in which the events occurred.")
    variant = models.CharField(max_length=32, blank=True, default="")
    page_view = models.PositiveIntegerField(default=0)
    product_view = models.PositiveIntegerField(default=0)
    add_to_cart = models.PositiveIntegerField(default=0)
    purchase = models.PositiveIntegerField(default=0)
    demand_activity = models.PositiveIntegerField(
        default=0, help_text="Sum of the events' demand weights: the demand signal's input (analytics/demand_caps.py)."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["retailer", "sku", "minute", "variant"], name="uniq_skuminutecount_bucket")
        ]
        indexes = [models.Index(fields=["retailer", "minute"], name="skuminutecount_retailer_minute")]

    def __str__(self) -> str:
        return f"{self.sku or '(page)'} {self.minute:%Y-%m-%d %H:%M}"


class DemandMark(models.Model):
    """A SKU whose demand signal must be recomputed: written by an ingested batch, taken by a refresh.

    Append-only (no unique key), so marking never waits on a refresh that is
    taking marks at the same moment.
    """

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE)
    sku = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"{self.sku} (retailer {self.retailer_id})"


class DemandUsage(models.Model):
    """What one source (a client hash ``c:…`` or a session ``s:…``) added to a SKU's demand in one hour.

    The budget of :mod:`analytics.demand_caps`; rows older than two hours are purged.
    """

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, db_index=False)
    sku = models.CharField(max_length=64)
    hour = models.DateTimeField()
    source = models.CharField(max_length=32)
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["retailer", "sku", "hour", "source"], name="uniq_demandusage_budget")
        ]
        indexes = [models.Index(fields=["hour"], name="demandusage_hour")]

    def __str__(self) -> str:
        return f"{self.source} on {self.sku} at {self.hour:%Y-%m-%d %H:00}: {self.used}"
