"""Demand: price x (1 + sensitivity x (signal - 1)), the multiplier kept within bounds.

The signal is 1.0000 for normal demand (last hour equals the trailing 7-day hourly
mean), 2.0000 for double; a SKU with no signal yet counts as 1.0000.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pricing.rules.base import (
    Adjustment,
    PricingInputs,
    RuleKind,
    RuleSpec,
    param_error,
    params_only,
    percent_param,
    rule_kind,
)


@rule_kind
class DemandRule(RuleKind):
    name = "demand"

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        params_only(params, {"sensitivity", "min_multiplier", "max_multiplier"})
        normalized = {
            "sensitivity": percent_param(params, "sensitivity", low="0", high="10", default="1"),
            "min_multiplier": percent_param(params, "min_multiplier", low="0", high="1", default="0.5"),
            "max_multiplier": percent_param(params, "max_multiplier", low="1", high="10", default="2"),
        }
        if Decimal(normalized["min_multiplier"]) > Decimal(normalized["max_multiplier"]):
            raise param_error("min_multiplier", "must not exceed max_multiplier")
        return normalized

    def adjust(self, price: Decimal, rule: RuleSpec, inputs: PricingInputs) -> Adjustment | None:
        params = rule.params
        raw = 1 + Decimal(params["sensitivity"]) * (inputs.demand_signal - 1)
        multiplier = min(max(raw, Decimal(params["min_multiplier"])), Decimal(params["max_multiplier"]))
        if multiplier == 1:
            return None
        return Adjustment(
            price * multiplier, {"signal": str(inputs.demand_signal), "multiplier": str(multiplier.normalize())}
        )
