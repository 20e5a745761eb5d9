"""Competitor: match or undercut the lowest competitor price, within bounds of the current price."""

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
    percent_factor,
    percent_param,
    rule_kind,
)


@rule_kind
class CompetitorRule(RuleKind):
    name = "competitor"

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        params_only(params, {"mode", "undercut_percent", "max_decrease_percent", "max_increase_percent"})
        mode = params.get("mode", "match")
        if mode not in ("match", "undercut"):
            raise param_error("mode", "must be 'match' or 'undercut'")
        normalized = {
            "mode": mode,
            "max_decrease_percent": percent_param(params, "max_decrease_percent", low="0", high="90", default="10"),
            "max_increase_percent": percent_param(params, "max_increase_percent", low="0", high="100", default="0"),
        }
        if mode == "undercut":
            normalized["undercut_percent"] = percent_param(params, "undercut_percent", low="0", high="50", default="1")
        elif "undercut_percent" in params:
            raise param_error("undercut_percent", "applies only with mode 'undercut'")
        return normalized

    def adjust(self, price: Decimal, rule: RuleSpec, inputs: PricingInputs) -> Adjustment | None:
        competitor = inputs.competitor_price
        if competitor is None:
            return None
        params = rule.params
        target = competitor
        if params["mode"] == "undercut":
            target = competitor * percent_factor(-Decimal(params["undercut_percent"]))
        lowest = price * percent_factor(-Decimal(params["max_decrease_percent"]))
        highest = price * percent_factor(params["max_increase_percent"])
        bounded = min(max(target, lowest), highest)
        if bounded == price:
            return None
        return Adjustment(bounded, {"competitor_price": str(competitor), "mode": params["mode"]})
