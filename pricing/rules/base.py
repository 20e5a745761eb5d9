"""What every rule kind shares: the inputs of one price, the running state, the registry.

A rule kind is a class registered with :func:`rule_kind`; the pipeline looks kinds
up by name, so adding a kind means adding a module, never a branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from pricing.money import AmountError, amount_format, amount_quantize, bounded_decimal_parse

DEFAULT_PATH = "_"


class ParamsError(ValueError):
    """Rule parameters that cannot be accepted; ``details`` are rows of the error body."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        self.details = details
        super().__init__("; ".join(f"{row['field']}: {row['message']}" for row in details))


def param_error(name: str, message: str, code: str = "invalid") -> ParamsError:
    return ParamsError([{"field": f"params.{name}", "code": code, "message": message}])


def percent_param(params: dict[str, Any], name: str, *, low: str, high: str, default: str | None = None) -> str:
    """A percentage parameter, normalized to its string form."""
    value = params.get(name, default)
    if value is None:
        raise param_error(name, "is required", "required")
    try:
        return str(bounded_decimal_parse(value, low=Decimal(low), high=Decimal(high)))
    except AmountError as error:
        raise param_error(name, str(error), error.code) from error


def int_param(params: dict[str, Any], name: str, *, low: int, high: int) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise param_error(name, f"must be a whole number from {low} to {high}")
    return value


def params_only(params: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise param_error(unknown[0], f"is not a parameter of this rule; expected {', '.join(sorted(allowed))}")


def percent_factor(percent: str | Decimal) -> Decimal:
    """``"5"`` → 1.05, ``"-10"`` → 0.90."""
    return 1 + Decimal(percent) / 100


@dataclass(frozen=True)
class PricingInputs:
    """Everything one SKU's price depends on, loaded before the pure computation."""

    sku: str
    currency: str
    base_price: Decimal
    cost: Decimal | None
    list_price: Decimal | None
    inventory: int | None
    demand_signal: Decimal
    competitor_price: Decimal | None
    now_local: datetime
    anchor_price: Decimal | None


@dataclass(frozen=True)
class RuleSpec:
    id: int
    kind: str
    name: str
    params: dict[str, Any]
    skus: frozenset[str] = frozenset()

    def applies_to(self, sku: str) -> bool:
        return not self.skus or sku in self.skus


@dataclass(frozen=True)
class Adjustment:
    price: Decimal
    detail: dict[str, str]


@dataclass
class PricePath:
    """One variant's price as it moves through the pipeline, with the steps that moved it."""

    price: Decimal
    steps: list[dict[str, Any]] = field(default_factory=list)

    def record(self, step: str, price: Decimal, currency: str, **detail: Any) -> None:
        self.price = amount_quantize(price, currency)
        self.steps.append({"step": step, "price": amount_format(self.price, currency), **detail})


@dataclass
class PriceState:
    """The running state of the pipeline: variant paths, the experiment, the next boundary."""

    paths: dict[str, PricePath]
    experiment: dict[str, Any] | None = None
    valid_until: datetime | None = None

    def expires(self, moment: datetime | None) -> None:
        if moment is not None and (self.valid_until is None or moment < self.valid_until):
            self.valid_until = moment


class RuleKind:
    """Base of a rule kind: validate parameters, adjust a price, say when the output changes."""

    name: ClassVar[str]

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def adjust(self, price: Decimal, rule: RuleSpec, inputs: PricingInputs) -> Adjustment | None:
        """The adjusted price, or None when the rule does not apply to these inputs."""
        raise NotImplementedError

    def next_change(self, rule: RuleSpec, inputs: PricingInputs) -> datetime | None:
        """When the output may change with no input changing (schedule boundaries)."""
        return None

    def run(self, state: PriceState, rule: RuleSpec, inputs: PricingInputs) -> None:
        state.expires(self.next_change(rule, inputs))
        for path in state.paths.values():
            adjustment = self.adjust(path.price, rule, inputs)
            if adjustment is not None:
                path.record(self.name, adjustment.price, inputs.currency, rule=rule.id, **adjustment.detail)


RULE_KINDS: dict[str, RuleKind] = {}


def rule_kind(cls: type[RuleKind]) -> type[RuleKind]:
    """Register a rule kind under its ``name``."""
    RULE_KINDS[cls.name] = cls()
    return cls
