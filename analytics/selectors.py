"""Reads of the analytics app: counts per SKU, a retailer's summary, conversion per variant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Sum
from django.db.models.functions import Coalesce

from analytics.demand import activity_expression
from analytics.models import EventType, SkuMinuteCount

COUNT_LABELS: tuple[str, ...] = tuple(label for _, label in EventType.choices)
TOP_SKUS = 10


def _sums() -> dict[str, Any]:
    return {label: Coalesce(Sum(label), 0) for label in COUNT_LABELS}


def sku_counts(*, retailer_id: int, sku: str, since: datetime, until: datetime) -> dict[str, int]:
    """Events of ``sku`` per type that occurred in ``[since, until)`` (minute resolution)."""
    return SkuMinuteCount.objects.filter(
        retailer_id=retailer_id, sku=sku, minute__gte=since, minute__lt=until
    ).aggregate(**_sums())


@dataclass(frozen=True)
class VariantConversion:
    variant: str
    product_views: int
    purchases: int

    @property
    def conversion(self) -> Decimal | None:
        """Purchases per product view, 4 places; ``None`` without views."""
        if not self.product_views:
            return None
        return (Decimal(self.purchases) / Decimal(self.product_views)).quantize(
            Decimal("0.0001"), rounding=ROUND_HALF_UP
        )


@dataclass(frozen=True)
class Summary:
    totals: dict[str, int]
    top_skus: list[dict[str, Any]]
    variants: list[VariantConversion]


def retailer_summary(*, retailer_id: int, since: datetime, until: datetime) -> Summary:
    """Totals by type, the top SKUs by weighted demand activity, and conversion per experiment variant."""
    window = SkuMinuteCount.objects.filter(retailer_id=retailer_id, minute__gte=since, minute__lt=until)
    totals = window.aggregate(**_sums())
    top = (
        window.exclude(sku="")
        .values("sku")
        .annotate(activity=Sum(activity_expression()), **_sums())
        .order_by("-activity", "sku")[:TOP_SKUS]
    )
    variants = (
        window.exclude(variant="")
        .values("variant")
        .annotate(product_views=Coalesce(Sum("product_view"), 0), purchases=Coalesce(Sum("purchase"), 0))
        .order_by("variant")
    )
    return Summary(
        totals=totals,
        top_skus=[
            {"sku": row["sku"], "activity": row["activity"], "counts": {label: row[label] for label in COUNT_LABELS}}
            for row in top
        ],
        variants=[VariantConversion(row["variant"], row["product_views"], row["purchases"]) for row in variants],
    )
