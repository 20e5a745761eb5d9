"""Retailer-wide switches of pricing: pause / resume, and the guardrail and rounding policy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from app.errors import ApiError
from app.tenancy.audit import audit_record
from app.tenancy.services import retailer_pricing_pause_set
from pricing.models import PricingPolicy, Product, RepricingJob
from pricing.money import AmountError, bounded_decimal_parse
from pricing.rules.guardrails import price_floor
from pricing.services.repricing import repricing_job_create

# How many offending SKUs a refused policy change names.
MAX_REPORTED_SKUS = 20
POLICY_FIELDS = ("min_margin_percent", "max_daily_change_percent", "rounding_step", "rounding_ending")


def pricing_pause_set(*, retailer_id: int, paused: bool, actor: str) -> RepricingJob | None:
    """Pause (answer base prices) or resume dynamic pricing for a retailer.

    The hot path follows the switch within ``API_KEY_CACHE_TTL`` seconds. The job
    created with the change records the shopper-visible price change of every SKU
    in price history and announces it. Returns None when the switch was already set.
    """
    with transaction.atomic():
        if not retailer_pricing_pause_set(retailer_id=retailer_id, paused=paused, actor=actor):
            return None
        reason = f"pricing {'paused' if paused else 'resumed'} by {actor}"
        return repricing_job_create(retailer_id=retailer_id, reason=reason)


def policy_json(policy: PricingPolicy) -> dict[str, Any]:
    return {name: None if getattr(policy, name) is None else str(getattr(policy, name)) for name in POLICY_FIELDS}


def _policy_values(data: dict[str, Any]) -> dict[str, Decimal | None]:
    unknown = sorted(set(data) - set(POLICY_FIELDS))
    if unknown:
        raise ApiError("validation_failed", f"{unknown[0]} is not a policy field.")
    limits = {
        "min_margin_percent": ("0", "1000"),
        "max_daily_change_percent": ("0", "100"),
        "rounding_step": ("0", "1000000"),
        "rounding_ending": ("0", "1000000"),
    }
    values: dict[str, Decimal | None] = {}
    for name, value in data.items():
        if value is None and name in ("max_daily_change_percent", "rounding_step"):
            values[name] = None
            continue
        try:
            low, high = limits[name]
            values[name] = bounded_decimal_parse(value, low=Decimal(low), high=Decimal(high))
        except AmountError as error:
            raise ApiError(
                error.code, f"{name}: {error}", details=[{"field": name, "code": error.code, "message": str(error)}]
            ) from error
    return values


def _floor_conflicts(retailer_id: int, margin: Decimal) -> list[str]:
    rows = Product.objects.filter(retailer_id=retailer_id, cost__isnull=False, list_price__isnull=False)
    return [
        sku
        for sku, cost, ceiling, currency in rows.values_list("sku", "cost", "list_price", "currency").iterator()
        if ceiling is not None and price_floor(cost=cost, currency=currency, min_margin_percent=margin) > ceiling
    ]


def policy_update(*, retailer_id: int, data: dict[str, Any], actor: str) -> tuple[PricingPolicy, RepricingJob]:
    """Change guardrails / rounding and reprice the catalog; refused if a floor would pass a ceiling."""
    values = _policy_values(data)
    with transaction.atomic():
        policy, _ = PricingPolicy.objects.select_for_update().get_or_create(retailer_id=retailer_id)
        before = policy_json(policy)
        for name, value in values.items():
            setattr(policy, name, value)
        if policy.rounding_step is not None and not 0 <= policy.rounding_ending < policy.rounding_step:
            raise ApiError("validation_failed", "rounding_ending must be at least 0 and below rounding_step.")
        if policy.rounding_step == 0:
            raise ApiError("validation_failed", "rounding_step must be above 0 (or null for no rounding).")
        conflicts = _floor_conflicts(retailer_id, policy.min_margin_percent)
        if conflicts:
            raise ApiError(
                "floor_above_ceiling",
                f"With this margin {len(conflicts)} products would have a floor above their list price.",
                details=[
                    {"field": "min_margin_percent", "code": "floor_above_ceiling", "message": sku}
                    for sku in conflicts[:MAX_REPORTED_SKUS]
                ],
            )
        policy.updated_at = timezone.now()
        policy.save()
        audit_record(
            actor=actor,
            retailer_id=retailer_id,
            entity="pricing_policy",
            entity_id=str(retailer_id),
            action="update",
            before=before,
            after=policy_json(policy),
        )
        job = repricing_job_create(retailer_id=retailer_id, reason=f"pricing policy changed by {actor}")
    return policy, job
