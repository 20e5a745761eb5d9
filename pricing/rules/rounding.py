"""Rounding to price points: ``k x step + ending`` (charm .99: step 1, ending 0.99; nearest .05: step 0.05).

The nearest price point inside the guardrail band wins (a tie goes down); when no
point lies inside the band the price stays as it is, so rounding never leaves
``[floor, ceiling]``.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from pricing.money import amount_fits
from pricing.rules.base import PricePath
from pricing.rules.guardrails import Band, PolicySpec


def price_point_candidates(price: Decimal, step: Decimal, ending: Decimal) -> tuple[Decimal, Decimal]:
    """The price points just below (or at) and just above ``price``."""
    k = ((price - ending) / step).to_integral_value(rounding=ROUND_FLOOR)
    lower = k * step + ending
    return lower, lower + step


def rounding_apply(path: PricePath, band: Band, policy: PolicySpec, currency: str) -> None:
    step, ending = policy.rounding_step, policy.rounding_ending
    if step is None:
        return
    if not (amount_fits(step, currency) and amount_fits(ending, currency)):
        path.steps.append({"step": "rounding", "skipped": f"step {step} / ending {ending} finer than {currency}"})
        return
    price = path.price
    lower, upper = price_point_candidates(price, step, ending)
    if lower == price:
        return
    inside = [
        candidate
        for candidate in (lower, upper)
        if candidate >= band.low and (band.high is None or candidate <= band.high)
    ]
    if not inside:
        return
    best = min(inside, key=lambda candidate: (abs(candidate - price), candidate))
    path.record("rounding", best, currency, price_step=str(step), ending=str(ending))
