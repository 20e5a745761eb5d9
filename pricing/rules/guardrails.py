"""Guardrails: floor from cost and a minimum margin, ceiling at list price, maximum daily change.

The band a price must end in is ``[floor, ceiling]`` narrowed by the daily change
limit around the price the SKU had when the day began (in the retailer's time
zone). Floor and ceiling always win: if the daily band falls outside them, it is
ignored rather than allowed to push the price past a guardrail.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from pricing.money import amount_quantize_up, currency_quantum
from pricing.rules.base import PricePath, PricingInputs, percent_factor

# The default policy moves a price by at most this much a day, so that no input (a flood of
# forged purchases, a bad competitor feed) can swing it further before a person looks; a
# retailer may set another limit, or none (null), through the policy API or the admin.
DEFAULT_MAX_DAILY_CHANGE_PERCENT = Decimal(20)


@dataclass(frozen=True)
class PolicySpec:
    min_margin_percent: Decimal = Decimal(0)
    max_daily_change_percent: Decimal | None = DEFAULT_MAX_DAILY_CHANGE_PERCENT
    rounding_step: Decimal | None = None
    rounding_ending: Decimal = Decimal(0)


@dataclass(frozen=True)
class Band:
    floor: Decimal
    ceiling: Decimal | None
    low: Decimal
    high: Decimal | None
    daily_limited: bool


def price_floor(*, cost: Decimal | None, currency: str, min_margin_percent: Decimal) -> Decimal:
    """Cost x (1 + margin / 100), rounded up to the minor unit; 0 without a cost."""
    if cost is None:
        return Decimal(0).quantize(currency_quantum(currency))
    return amount_quantize_up(cost * percent_factor(min_margin_percent), currency)


def price_band(inputs: PricingInputs, policy: PolicySpec) -> Band:
    floor = price_floor(cost=inputs.cost, currency=inputs.currency, min_margin_percent=policy.min_margin_percent)
    ceiling = inputs.list_price
    if ceiling is not None and floor > ceiling:
        floor = ceiling  # refused at write time; kept safe here for rows written before a policy change
    limit, anchor = policy.max_daily_change_percent, inputs.anchor_price
    if limit is None or anchor is None:
        return Band(floor, ceiling, floor, ceiling, daily_limited=False)
    quantum = currency_quantum(inputs.currency)
    low = max(floor, (anchor * percent_factor(-limit)).quantize(quantum, rounding=ROUND_CEILING))
    high = (anchor * percent_factor(limit)).quantize(quantum, rounding=ROUND_FLOOR)
    if ceiling is not None:
        high = min(high, ceiling)
    if low > high:
        return Band(floor, ceiling, floor, ceiling, daily_limited=False)
    return Band(floor, ceiling, low, high, daily_limited=True)


def guardrails_apply(path: PricePath, band: Band, currency: str) -> bool:
    """Clamp the path's price into the band; True when the daily limit did the clamping."""
    price = path.price
    if price < band.low:
        step = "floor" if band.low == band.floor else "max_daily_change"
        path.record(step, band.low, currency, bound=str(band.low))
        return step == "max_daily_change"
    if band.high is not None and price > band.high:
        step = "ceiling" if band.high == band.ceiling else "max_daily_change"
        path.record(step, band.high, currency, bound=str(band.high))
        return step == "max_daily_change"
    return False
