"""Experiment: an A/B price split. The snapshot holds one price per variant.

A visitor's variant is fixed by a hash of the experiment key and the visitor id
(:func:`variant_for`), so the same visitor sees the same price on every page,
in every process. Only the first enabled experiment that covers a SKU applies.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from app.text_rules import FullMatch
from pricing.rules.base import (
    Adjustment,
    PricePath,
    PriceState,
    PricingInputs,
    RuleKind,
    RuleSpec,
    param_error,
    params_only,
    percent_factor,
    percent_param,
    rule_kind,
)
from pricing.skus import SKU, SKU_MESSAGE

NAME = FullMatch(r"[A-Za-z0-9_-]{1,32}")
KEY = SKU  # an experiment key is spelled like a SKU (it often is one, or a campaign name)
MAX_VARIANTS = 10
MAX_TOTAL_WEIGHT = 10_000


def variant_for(experiment: dict[str, Any], visitor: str | None) -> str:
    """The variant a visitor sees; without a visitor id, the first (control) variant."""
    variants = experiment["variants"]
    if not visitor:
        return str(variants[0][0])
    digest = hashlib.sha256(f"{experiment['key']}:{visitor}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(weight for _, weight in variants)
    for name, weight in variants:
        if point < weight:
            return str(name)
        point -= weight
    return str(variants[-1][0])


@rule_kind
class ExperimentRule(RuleKind):
    name = "experiment"

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        params_only(params, {"key", "variants"})
        key = params.get("key")
        if not KEY.matches(key):
            raise param_error("key", f"is spelled like a SKU ({SKU_MESSAGE}); it seeds the visitor bucketing")
        variants = params.get("variants")
        if not isinstance(variants, list) or not 2 <= len(variants) <= MAX_VARIANTS:
            raise param_error("variants", f"must be a list of 2 to {MAX_VARIANTS} variants")
        normalized = []
        for position, variant in enumerate(variants):
            field = f"variants[{position}]"
            if not isinstance(variant, dict) or not NAME.matches(variant.get("name")):
                raise param_error(f"{field}.name", f"must match {NAME.ecmascript}")
            weight = variant.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise param_error(f"{field}.weight", "must be a whole number of at least 1")
            percent = percent_param(variant, "adjust_percent", low="-90", high="100", default="0")
            normalized.append({"name": variant["name"], "weight": weight, "adjust_percent": percent})
        if len({variant["name"] for variant in normalized}) != len(normalized):
            raise param_error("variants", "variant names must be unique")
        if sum(variant["weight"] for variant in normalized) > MAX_TOTAL_WEIGHT:
            raise param_error("variants", f"weights must add up to at most {MAX_TOTAL_WEIGHT}")
        return {"key": key, "variants": normalized}

    def adjust(self, price: Decimal, rule: RuleSpec, inputs: PricingInputs) -> Adjustment | None:
        return None

    def run(self, state: PriceState, rule: RuleSpec, inputs: PricingInputs) -> None:
        if state.experiment is not None:
            return
        (control,) = state.paths.values()
        variants = rule.params["variants"]
        state.experiment = {
            "key": rule.params["key"],
            "variants": [[variant["name"], variant["weight"]] for variant in variants],
        }
        state.paths = {}
        for variant in variants:
            path = PricePath(control.price, list(control.steps))
            percent = variant["adjust_percent"]
            path.record(
                self.name,
                control.price * percent_factor(percent),
                inputs.currency,
                rule=rule.id,
                variant=variant["name"],
                percent=percent,
            )
            state.paths[variant["name"]] = path
