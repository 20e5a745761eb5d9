"""Reads of the pricing app. Every read is scoped to one retailer: another's rows are not found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Min, Q, QuerySet
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


def price_history_list(*, retailer_id: int, sku: str, variant: str = "") -> QuerySet[PriceHistory]:
    """Changes of the price shown without a variant (``variant=""``) or of one experiment variant's."""
    return PriceHistory.objects.filter(retailer_id=retailer_id, sku=sku, variant=variant).order_by("-at", "-id")


@dataclass(frozen=True)
class PriorLowestPrice:
    """The reference price the EU Omnibus directive asks for beside a price reduction."""

    price: Decimal  # the price shown now
    price_since: datetime  # when it took effect
    lowest_price: Decimal  # the lowest price applied in the window before it (or ``price`` itself: none before)
    currency: str
    since: datetime  # the window's start: ``price_since`` minus the days asked for

    @property
    def reduced(self) -> bool:
        return self.price < self.lowest_price


def price_prior_lowest(
    *, retailer_id: int, sku: str, variant: str = "", days: int = 30, now: datetime | None = None
) -> PriorLowestPrice | None:
    """The lowest price applied in the ``days`` days BEFORE the current price took effect.

    This is the "prior price" shown beside a reduction (EU Omnibus, Directive 2019/2161 art. 6a):
    the current (discounted) price is not part of its own reference. The price in effect when
    the window opened counts, as does every change inside it. A second reduction within the
    window is measured against the lowest price before it, the first reduction included; after a
    rise, the answer is still the lowest price before the rise and ``reduced`` is false. A SKU with
    a shorter history is measured over what it has; one that never had another price answers its
    current price (nothing to compare with; ``reduced`` is false). ``variant`` names an
    experiment variant (its own history); empty: the price shown without one. None: no history.
    """
    history = price_history_list(retailer_id=retailer_id, sku=sku, variant=variant).filter(
        at__lte=now or timezone.now()
    )
    current = history.first()
    if current is None:
        return None
    since = current.at - timedelta(days=days)
    before = history.filter(Q(at__lt=current.at) | Q(at=current.at, id__lt=current.id))
    lowest = before.filter(at__gte=since).aggregate(lowest=Min("price"))["lowest"]
    opening = before.filter(at__lt=since).first()
    candidates = [price for price in (lowest, opening.price if opening else None) if price is not None]
    return PriorLowestPrice(
        price=current.price,
        price_since=current.at,
        lowest_price=min(candidates, default=current.price),
        currency=current.currency,
        since=since,
    )
