"""Reads of the pricing app. Every read is scoped to one retailer: another's rows are not found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Min, QuerySet
from django.utils import timezone

from app.errors import ApiError
from pricing.models import PriceHistory, PriceSnapshot, PricingPolicy, Product, RepricingJob, Rule


def snapshots_of(*, retailer_id: int, skus: list[str]) -> list[PriceSnapshot]:
    """The computed snapshots (active or not) of these SKUs."""
    return list(PriceSnapshot.objects.filter(retailer_id=retailer_id, sku__in=skus, version__gt=0))


def snapshot_get(*, retailer_id: int, sku: str) -> PriceSnapshot | None:
    return PriceSnapshot.objects.filter(retailer_id=retailer_id, sku=sku, version__gt=0).first()


def product_list(*, retailer_id: int) -> QuerySet[Product]:
    return Product.objects.filter(retailer_id=retailer_id).order_by("sku")


def product_get(*, retailer_id: int, sku: str) -> Product:
    product = Product.objects.filter(retailer_id=retailer_id, sku=sku).first()
    if product is None:
        raise ApiError("unknown_sku", f"No product has the SKU {sku!r}.")
    return product


def rule_list(*, retailer_id: int) -> QuerySet[Rule]:
    return Rule.objects.filter(retailer_id=retailer_id).order_by("position", "id")


def rule_get(*, retailer_id: int, rule_id: int) -> Rule:
    rule = Rule.objects.filter(retailer_id=retailer_id, pk=rule_id).first()
    if rule is None:
        raise ApiError("not_found", f"No rule {rule_id}.")
    return rule


def repricing_job_get(*, retailer_id: int, job_id: int) -> RepricingJob:
    job = RepricingJob.objects.filter(retailer_id=retailer_id, pk=job_id).first()
    if job is None:
        raise ApiError("not_found", f"No repricing job {job_id}.")
    return job


def policy_get(*, retailer_id: int) -> PricingPolicy:
    """The retailer's policy, or the defaults (unsaved) when it never set one."""
    return PricingPolicy.objects.filter(retailer_id=retailer_id).first() or PricingPolicy(retailer_id=retailer_id)


def price_history_list(*, retailer_id: int, sku: str) -> QuerySet[PriceHistory]:
    return PriceHistory.objects.filter(retailer_id=retailer_id, sku=sku).order_by("-at", "-id")


@dataclass(frozen=True)
class LowestPrice:
    price: Decimal
    currency: str
    since: datetime


def price_lowest(*, retailer_id: int, sku: str, days: int = 30, now: datetime | None = None) -> LowestPrice | None:
    """The lowest price shoppers saw in the last ``days`` days (EU Omnibus: shown beside a discount).

    Counts the price in effect when the window opened as well as every change inside it.
    """
    since = (now or timezone.now()) - timedelta(days=days)
    history = price_history_list(retailer_id=retailer_id, sku=sku)
    inside = history.filter(at__gte=since)
    lowest = inside.aggregate(lowest=Min("price"))["lowest"]
    opening = history.filter(at__lt=since).first()
    candidates = [price for price in (lowest, opening.price if opening else None) if price is not None]
    if not candidates:
        return None
    latest = history.first()
    assert latest is not None
    return LowestPrice(price=min(candidates), currency=latest.currency, since=since)
