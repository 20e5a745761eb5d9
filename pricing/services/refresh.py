"""Recompute snapshots: load inputs, run the pipeline, store, keep history, announce.

:func:`snapshots_refresh` is the one write path of prices. Product upserts, rule
changes (through repricing shards), demand signals, competitor prices, the pause
switch and schedule boundaries all end here. Every change of a shown price — the default one
and, under an experiment, each variant's — is kept as price history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Min
from django.utils import timezone

from app.tenancy.models import Retailer
from pricing.models import CompetitorPrice, DemandSignal, PriceHistory, PriceSnapshot, PricingPolicy, Product, Rule
from pricing.money import amount_format
from pricing.rules.base import PricingInputs, RuleSpec
from pricing.rules.guardrails import PolicySpec
from pricing.rules.pipeline import ComputedPrice, price_compute
from pricing.services.announce import PriceChange, prices_changed_announce
from pricing.snapshots import snapshots_cache_store

NORMAL_DEMAND = Decimal("1.0000")
SNAPSHOT_FIELDS = [
    "active",
    "currency",
    "base_price",
    "prices",
    "experiment",
    "steps",
    "effective_price",
    "effective_prices",
    "version",
    "anchor_price",
    "anchor_date",
    "valid_until",
    "computed_at",
]


@dataclass
class RefreshResult:
    changed: list[str] = field(default_factory=list)
    snapshots: dict[str, PriceSnapshot] = field(default_factory=dict)


def policy_spec(retailer_id: int) -> PolicySpec:
    policy = PricingPolicy.objects.filter(retailer_id=retailer_id).first()
    if policy is None:
        return PolicySpec()
    return PolicySpec(
        min_margin_percent=policy.min_margin_percent,
        max_daily_change_percent=policy.max_daily_change_percent,
        rounding_step=policy.rounding_step,
        rounding_ending=policy.rounding_ending,
    )


def rule_specs(retailer_id: int) -> list[RuleSpec]:
    rules = Rule.objects.filter(retailer_id=retailer_id, enabled=True).order_by("position", "id")
    return [RuleSpec(r.id, r.kind, r.name, r.params, frozenset(r.skus)) for r in rules]


def _inputs(
    product: Product, *, signal: Decimal, competitor: Decimal | None, now_local: datetime, anchor: Decimal | None
) -> PricingInputs:
    return PricingInputs(
        sku=product.sku,
        currency=product.currency,
        base_price=product.base_price,
        cost=product.cost,
        list_price=product.list_price,
        inventory=product.inventory,
        demand_signal=signal,
        competitor_price=competitor,
        now_local=now_local,
        anchor_price=anchor,
    )


def _anchor(snapshot: PriceSnapshot, today: object) -> Decimal | None:
    """The price the SKU had when today began: kept for the day, taken at the first change."""
    if snapshot.anchor_date == today:
        return snapshot.anchor_price
    if snapshot.version and snapshot.prices:
        return Decimal(next(iter(snapshot.prices.values())))
    return None


def _valid_until(computed: ComputedPrice, now_local: datetime) -> datetime | None:
    moment = computed.valid_until
    if computed.daily_limited:
        tomorrow = datetime.combine(now_local.date() + timedelta(days=1), time(0), tzinfo=now_local.tzinfo)
        moment = tomorrow if moment is None else min(moment, tomorrow)
    return moment.astimezone(ZoneInfo("UTC")) if moment is not None else None


def _shown_prices(product: Product, computed: ComputedPrice, *, paused: bool) -> dict[str, str]:
    """What each experiment variant's shoppers are shown (the base price while paused, as the hot
    path answers); empty without an experiment, where the effective price is the one price."""
    if not computed.experiment:
        return {}
    return {
        name: amount_format(product.base_price if paused else price, product.currency)
        for name, price in computed.prices.items()
    }


@dataclass(frozen=True)
class Applied:
    changed: bool = False
    effective_changed: bool = False
    variants_changed: tuple[str, ...] = ()


def _apply(
    snapshot: PriceSnapshot,
    product: Product,
    computed: ComputedPrice,
    *,
    paused: bool,
    now: datetime,
    now_local: datetime,
    anchor: Decimal | None,
) -> Applied:
    """Write the computed values onto the row: whether anything changed, the effective price,
    and which experiment variants' shown prices."""
    currency = product.currency
    before = (
        snapshot.active,
        snapshot.currency,
        snapshot.base_price,
        snapshot.prices,
        snapshot.experiment,
        snapshot.steps,
        snapshot.valid_until,
    )
    prices = {name: amount_format(price, currency) for name, price in computed.prices.items()}
    snapshot.active = product.active
    snapshot.currency = currency
    snapshot.base_price = product.base_price
    snapshot.prices = prices
    snapshot.experiment = computed.experiment
    snapshot.steps = computed.steps
    snapshot.valid_until = _valid_until(computed, now_local)
    after = (
        snapshot.active,
        snapshot.currency,
        snapshot.base_price,
        snapshot.prices,
        snapshot.experiment,
        snapshot.steps,
        snapshot.valid_until,
    )
    effective = product.base_price if paused else computed.default_price
    effective_changed = product.active and (snapshot.version == 0 or snapshot.effective_price != effective)
    shown = _shown_prices(product, computed, paused=paused) if product.active else snapshot.effective_prices
    variants_changed = tuple(name for name, price in shown.items() if snapshot.effective_prices.get(name) != price)
    if before == after and not effective_changed and not variants_changed and snapshot.version:
        return Applied()
    snapshot.version += 1
    snapshot.computed_at = now
    if product.active:
        snapshot.effective_price = effective
    snapshot.effective_prices = shown
    snapshot.anchor_price = anchor if anchor is not None else computed.default_price
    snapshot.anchor_date = now_local.date()
    return Applied(changed=True, effective_changed=effective_changed, variants_changed=variants_changed)


def _history(snapshot: PriceSnapshot, *, reason: str, now: datetime) -> PriceHistory:
    return PriceHistory(
        retailer_id=snapshot.retailer_id,
        sku=snapshot.sku,
        price=snapshot.effective_price,
        currency=snapshot.currency,
        version=snapshot.version,
        reason=reason[:100],
        at=now,
    )


def _change(snapshot: PriceSnapshot, old_price: str | None) -> PriceChange:
    return PriceChange(
        sku=snapshot.sku,
        old_price=old_price,
        new_price=amount_format(snapshot.effective_price, snapshot.currency),
        currency=snapshot.currency,
        version=snapshot.version,
    )


def _variant_history(
    snapshot: PriceSnapshot, variants: tuple[str, ...], *, reason: str, now: datetime
) -> list[PriceHistory]:
    """A history row per experiment variant whose shown price changed (a variant's own 30-day reference)."""
    return [
        PriceHistory(
            retailer_id=snapshot.retailer_id,
            sku=snapshot.sku,
            variant=name,
            price=Decimal(snapshot.effective_prices[name]),
            currency=snapshot.currency,
            version=snapshot.version,
            reason=reason[:100],
            at=now,
        )
        for name in variants
    ]


def _placeholders(retailer_id: int, products: dict[str, Product]) -> None:
    """Insert empty rows for SKUs priced for the first time, so every row can be locked."""
    PriceSnapshot.objects.bulk_create(
        [
            PriceSnapshot(
                retailer_id=retailer_id,
                sku=sku,
                currency=product.currency,
                base_price=product.base_price,
                effective_price=product.base_price,
                version=0,
            )
            for sku, product in sorted(products.items())
        ],
        ignore_conflicts=True,
    )


def _store(snapshots: list[PriceSnapshot]) -> None:
    """Write changed rows with one INSERT … ON CONFLICT UPDATE (bulk_update's CASE takes ~10x longer)."""
    copies = [
        PriceSnapshot(retailer_id=s.retailer_id, sku=s.sku, **{name: getattr(s, name) for name in SNAPSHOT_FIELDS})
        for s in snapshots
    ]
    PriceSnapshot.objects.bulk_create(
        copies, update_conflicts=True, unique_fields=["retailer", "sku"], update_fields=SNAPSHOT_FIELDS
    )


def snapshots_refresh(*, retailer_id: int, skus: list[str], reason: str, now: datetime | None = None) -> RefreshResult:
    """Recompute the snapshots of ``skus`` (unknown SKUs are ignored).

    Runs in the caller's transaction (or its own): rows are locked in SKU order, so
    concurrent refreshes of overlapping SKUs serialize instead of deadlocking or
    losing an update. Every change of the price a shopper sees appends a history row;
    the call announces them all as one ``prices.changed`` event (in pages of 500, with
    old and new prices and each snapshot's new version) through the outbox. The Redis
    copies are written after the commit.
    """
    with transaction.atomic():
        moment = now or timezone.now()
        known = {p.sku: p for p in Product.objects.filter(retailer_id=retailer_id, sku__in=skus)}
        if not known:
            return RefreshResult()
        _placeholders(retailer_id, known)
        rows = list(
            PriceSnapshot.objects.select_for_update()
            .filter(retailer_id=retailer_id, sku__in=list(known))
            .order_by("sku")
        )
        # Every input is read after the locks are held: a writer that committed its change
        # (and its own refresh) before we got them is seen, so we never write an older price.
        retailer = Retailer.objects.get(pk=retailer_id)
        now_local = moment.astimezone(ZoneInfo(retailer.time_zone))
        products = {p.sku: p for p in Product.objects.filter(retailer_id=retailer_id, sku__in=list(known))}
        signals = dict(
            DemandSignal.objects.filter(retailer_id=retailer_id, sku__in=list(products)).values_list("sku", "signal")
        )
        competitors = dict(
            CompetitorPrice.objects.filter(retailer_id=retailer_id, sku__in=list(products))
            .values("sku")
            .annotate(lowest=Min("price"))
            .values_list("sku", "lowest")
        )
        rules, policy = rule_specs(retailer_id), policy_spec(retailer_id)
        result, written, history = RefreshResult(), [], []
        changes: list[PriceChange] = []
        for snapshot in rows:
            product = products[snapshot.sku]
            anchor = _anchor(snapshot, now_local.date())
            inputs = _inputs(
                product,
                signal=signals.get(snapshot.sku, NORMAL_DEMAND),
                competitor=competitors.get(snapshot.sku),
                now_local=now_local,
                anchor=anchor,
            )
            computed = price_compute(inputs=inputs, rules=rules, policy=policy)
            old_prices = snapshot.prices
            old_price = amount_format(snapshot.effective_price, snapshot.currency) if snapshot.version else None
            applied = _apply(
                snapshot,
                product,
                computed,
                paused=retailer.pricing_paused,
                now=moment,
                now_local=now_local,
                anchor=anchor,
            )
            result.snapshots[snapshot.sku] = snapshot
            if not applied.changed:
                continue
            written.append(snapshot)
            if applied.effective_changed:
                history.append(_history(snapshot, reason=reason, now=moment))
                changes.append(_change(snapshot, old_price))
            history.extend(_variant_history(snapshot, applied.variants_changed, reason=reason, now=moment))
            if applied.effective_changed or applied.variants_changed or old_prices != snapshot.prices:
                result.changed.append(snapshot.sku)
        _store(written)
        PriceHistory.objects.bulk_create(history)
        prices_changed_announce(retailer_id=retailer_id, reason=reason, changes=changes, now=moment)
        transaction.on_commit(lambda: snapshots_cache_store(written))
    return result
