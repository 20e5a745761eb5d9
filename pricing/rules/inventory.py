"""Inventory: raise the price when stock is scarce, cut it when stock piles up."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pricing.rules.base import (
    Adjustment,
    PricingInputs,
    RuleKind,
    RuleSpec,
    int_param,
    param_error,
    params_only,
    percent_factor,
    percent_param,
    rule_kind,
)

MAX_UNITS = 1_000_000_000


@rule_kind
class InventoryRule(RuleKind):
    name = "inventory"

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        params_only(
            params, {"scarce_at_or_below", "scarcity_raise_percent", "overstock_at_or_above", "overstock_cut_percent"}
        )
        normalized: dict[str, Any] = {}
        if "scarce_at_or_below" in params or "scarcity_raise_percent" in params:
            normalized["scarce_at_or_below"] = int_param(params, "scarce_at_or_below", low=0, high=MAX_UNITS)
            normalized["scarcity_raise_percent"] = percent_param(params, "scarcity_raise_percent", low="0", high="100")
        if "overstock_at_or_above" in params or "overstock_cut_percent" in params:
            normalized["overstock_at_or_above"] = int_param(params, "overstock_at_or_above", low=1, high=MAX_UNITS)
            normalized["overstock_cut_percent"] = percent_param(params, "overstock_cut_percent", low="0", high="90")
        if not normalized:
            raise param_error("scarce_at_or_below", "give a scarcity threshold, an overstock threshold or both")
        scarce, overstock = normalized.get("scarce_at_or_below"), normalized.get("overstock_at_or_above")
        if scarce is not None and overstock is not None and scarce >= overstock:
            raise param_error("overstock_at_or_above", "must be above scarce_at_or_below")
        return normalized

    def adjust(self, price: Decimal, rule: RuleSpec, inputs: PricingInputs) -> Adjustment | None:
        units, params = inputs.inventory, rule.params
        if units is None:
            return None
        scarce, overstock = params.get("scarce_at_or_below"), params.get("overstock_at_or_above")
        if scarce is not None and units <= scarce:
            percent = params["scarcity_raise_percent"]
            return Adjustment(price * percent_factor(percent), {"inventory": str(units), "percent": percent})
        if overstock is not None and units >= overstock:
            percent = f"-{params['overstock_cut_percent']}"
            return Adjustment(price * percent_factor(percent), {"inventory": str(units), "percent": percent})
        return None
