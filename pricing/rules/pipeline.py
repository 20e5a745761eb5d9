"""The pricing pipeline: base price → rule adjustments → guardrails → rounding.

:func:`price_compute` is pure (no I/O): callers load :class:`PricingInputs`, the
retailer's enabled rules in order and its policy, and store the result.
Every intermediate price is rounded half up to the currency's minor unit and
recorded as a step, so ``explain=1`` shows exactly how a price came to be.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pricing.rules import competitor, demand, experiment, inventory, schedule  # noqa: F401 - registers kinds
from pricing.rules.base import DEFAULT_PATH, RULE_KINDS, ParamsError, PricePath, PriceState, PricingInputs, RuleSpec
from pricing.rules.guardrails import PolicySpec, guardrails_apply, price_band
from pricing.rules.rounding import rounding_apply


@dataclass(frozen=True)
class ComputedPrice:
    prices: dict[str, Decimal]
    steps: dict[str, list[dict[str, Any]]]
    experiment: dict[str, Any] | None
    floor: Decimal
    ceiling: Decimal | None
    valid_until: datetime | None
    daily_limited: bool

    @property
    def default_variant(self) -> str:
        return next(iter(self.prices))

    @property
    def default_price(self) -> Decimal:
        return self.prices[self.default_variant]


def price_compute(*, inputs: PricingInputs, rules: list[RuleSpec], policy: PolicySpec) -> ComputedPrice:
    """Compute every variant's price for one SKU; deterministic for equal inputs."""
    base = PricePath(inputs.base_price)
    base.record("base", inputs.base_price, inputs.currency)
    state = PriceState(paths={DEFAULT_PATH: base})
    for rule in rules:
        if rule.applies_to(inputs.sku):
            RULE_KINDS[rule.kind].run(state, rule, inputs)
    band = price_band(inputs, policy)
    daily_limited = False
    for path in state.paths.values():
        daily_limited |= guardrails_apply(path, band, inputs.currency)
        rounding_apply(path, band, policy, inputs.currency)
    return ComputedPrice(
        prices={name: path.price for name, path in state.paths.items()},
        steps={name: path.steps for name, path in state.paths.items()},
        experiment=state.experiment,
        floor=band.floor,
        ceiling=band.ceiling,
        valid_until=state.valid_until,
        daily_limited=daily_limited,
    )


def rule_params_validate(kind: str, params: Any) -> dict[str, Any]:
    """Normalized parameters of a rule of ``kind``, or ``ParamsError`` with details."""
    if not isinstance(params, dict):
        raise ParamsError([{"field": "params", "code": "invalid", "message": "must be an object"}])
    return RULE_KINDS[kind].validate(params)
