"""Inputs that move prices without touching the catalog: demand signals and competitor prices."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from app.errors import ApiError
from app.tenancy.audit import audit_record
from pricing.models import CompetitorPrice, DemandSignal, PriceSnapshot
from pricing.money import AmountError, amount_format, amount_parse
from pricing.services.refresh import snapshots_refresh

MAX_SIGNAL = Decimal("1000")
SIGNAL_PLACES = Decimal("0.0001")


def demand_signal_clean(signal: object) -> Decimal:
    """A demand signal as a Decimal with 4 places, from 0 to 1000; 400 otherwise."""
    try:
        value = Decimal(signal) if isinstance(signal, (str, Decimal)) else None  # a JSON number: refused
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise ApiError("invalid_decimal", 'A demand signal is a decimal string such as "1.2500" (1 = normal demand).')
    if value < 0:
        raise ApiError("negative_amount", "A demand signal cannot be negative.")
    if value > MAX_SIGNAL or value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ApiError("invalid_decimal", f"A demand signal has at most 4 decimal places and is at most {MAX_SIGNAL}.")
    return value.quantize(SIGNAL_PLACES)


def demand_signals_set(*, retailer_id: int, signals: dict[str, Decimal], actor: str) -> list[str]:
    """Store demand signals (1.0000 = normal) and reprice the SKUs whose price moves.

    One transaction for the whole batch; returns the SKUs whose price changed, each
    of which appended price history; the batch announces them as one ``prices.changed``
    event (old and new prices, new versions). Signals for SKUs not in the catalog are kept for when they arrive.
    Idempotent: the same signals again change nothing.
    """
    cleaned = {sku: demand_signal_clean(signal) for sku, signal in signals.items()}
    if not cleaned:
        return []
    now = timezone.now()
    with transaction.atomic():
        DemandSignal.objects.bulk_create(
            [
                DemandSignal(retailer_id=retailer_id, sku=sku, signal=value, updated_at=now)
                for sku, value in sorted(cleaned.items())
            ],
            update_conflicts=True,
            unique_fields=["retailer", "sku"],
            update_fields=["signal", "updated_at"],
        )
        result = snapshots_refresh(retailer_id=retailer_id, skus=sorted(cleaned), reason=f"demand signal from {actor}")
    return result.changed


def demand_signal_set(*, retailer_id: int, sku: str, signal: Decimal, actor: str) -> bool:
    """Store one SKU's demand signal and reprice it; True when its price changed."""
    return sku in demand_signals_set(retailer_id=retailer_id, signals={sku: signal}, actor=actor)


@transaction.atomic
def competitor_price_set(
    *, retailer_id: int, sku: str, competitor: str, price: object, currency: str, actor: str
) -> PriceSnapshot | None:
    """Record a competitor's price for a SKU (in the product's currency) and reprice the SKU."""
    try:
        amount = amount_parse(price, currency=currency)
    except AmountError as error:
        raise ApiError(
            error.code, str(error), details=[{"field": "price", "code": error.code, "message": str(error)}]
        ) from error
    before = CompetitorPrice.objects.filter(retailer_id=retailer_id, sku=sku, competitor=competitor).first()
    CompetitorPrice.objects.update_or_create(
        retailer_id=retailer_id,
        sku=sku,
        competitor=competitor,
        defaults={"price": amount, "observed_at": timezone.now()},
    )
    audit_record(
        actor=actor,
        retailer_id=retailer_id,
        entity="competitor_price",
        entity_id=f"{sku}:{competitor}",
        action="update" if before else "create",
        before={"price": amount_format(before.price, currency)} if before else None,
        after={"price": amount_format(amount, currency)},
    )
    result = snapshots_refresh(retailer_id=retailer_id, skus=[sku], reason=f"competitor price of {competitor}")
    return result.snapshots.get(sku)
