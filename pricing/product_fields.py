"""Validation of product fields as they arrive (one PUT or one row of a bulk upsert).

Each problem becomes a ``details`` row ``{"index", "field", "code", "message"}`` whose
code is an ``ERROR_CODES`` key where one fits (``invalid_decimal``, ``negative_amount``,
``unknown_currency``, ``floor_above_ceiling``, ``invalid_sku``), so a client can
tell what to fix in which row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from pricing.money import AmountError, amount_format, amount_parse, currency_exponent
from pricing.rules.guardrails import price_floor
from pricing.skus import sku_problem, sku_valid

FIELDS = {"sku", "name", "currency", "base_price", "cost", "list_price", "inventory", "active"}
MAX_INVENTORY = 2_000_000_000


@dataclass(frozen=True)
class ProductFields:
    sku: str
    name: str
    currency: str
    base_price: Decimal
    cost: Decimal | None
    list_price: Decimal | None
    inventory: int | None
    active: bool

    def as_json(self) -> dict[str, Any]:
        """JSON-safe form for audit rows and answers (amounts as strings)."""
        values = asdict(self)
        for name in ("base_price", "cost", "list_price"):
            if values[name] is not None:
                values[name] = amount_format(values[name], self.currency)
        return values


class ProductInvalidError(ValueError):
    def __init__(self, details: list[dict[str, Any]]) -> None:
        self.details = details
        super().__init__(details[0]["message"])

    @property
    def code(self) -> str:
        """One code for the whole request: the problem's own code when all rows agree."""
        codes = {row["code"] for row in self.details}
        only = codes.pop() if len(codes) == 1 else "validation_failed"
        return only if only in _TOP_LEVEL_CODES else "validation_failed"


_TOP_LEVEL_CODES = {"invalid_decimal", "negative_amount", "unknown_currency", "floor_above_ceiling", "invalid_sku"}


def _problem(index: int | None, field: str, code: str, message: str) -> dict[str, Any]:
    row: dict[str, Any] = {"field": field, "code": code, "message": message}
    if index is not None:
        row = {"index": index, **row}
    return row


def _currency(raw: dict[str, Any], default: str, index: int | None, problems: list[dict[str, Any]]) -> str | None:
    currency = raw.get("currency", default)
    try:
        currency_exponent(currency if isinstance(currency, str) else "")
    except AmountError as error:
        problems.append(_problem(index, "currency", error.code, str(error)))
        return None
    return str(currency)


def _amount(
    raw: dict[str, Any], name: str, currency: str, index: int | None, problems: list[dict[str, Any]], *, required: bool
) -> Decimal | None:
    value = raw.get(name)
    if value is None:
        if required:
            problems.append(_problem(index, name, "required", f"{name} is required."))
        return None
    try:
        return amount_parse(value, currency=currency)
    except AmountError as error:
        problems.append(_problem(index, name, error.code, f"{name}: {error}"))
        return None


def _scalars(raw: dict[str, Any], index: int | None, problems: list[dict[str, Any]]) -> tuple[str, int | None, bool]:
    name = raw.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        problems.append(_problem(index, "name", "invalid", "name is a text of 1 to 200 characters."))
        name = ""
    inventory = raw.get("inventory")
    if inventory is not None and (
        isinstance(inventory, bool) or not isinstance(inventory, int) or not 0 <= inventory <= MAX_INVENTORY
    ):
        problems.append(_problem(index, "inventory", "invalid", "inventory is a whole number of units, 0 or more."))
        inventory = None
    active = raw.get("active", True)
    if not isinstance(active, bool):
        problems.append(_problem(index, "active", "invalid", "active is true or false."))
        active = True
    return name.strip(), inventory, active


def product_fields_clean(
    raw: Any, *, sku: str | None, default_currency: str, min_margin_percent: Decimal, index: int | None = None
) -> ProductFields:
    """Clean one product; ``sku`` comes from the URL (PUT) or, when None, from ``raw``."""
    if not isinstance(raw, dict):
        raise ProductInvalidError([_problem(index, "", "invalid", "A product is a JSON object.")])
    problems: list[dict[str, Any]] = []
    unknown = sorted(set(raw) - FIELDS)
    for field in unknown:
        problems.append(_problem(index, field, "invalid", f"{field} is not a product field."))
    chosen = raw.get("sku") if sku is None else sku
    if not sku_valid(chosen):
        problems.append(sku_problem(chosen, index=index))
    elif sku is not None and raw.get("sku", sku) != sku:
        problems.append(_problem(index, "sku", "invalid", "The sku in the body differs from the one in the URL."))
    name, inventory, active = _scalars(raw, index, problems)
    currency = _currency(raw, default_currency, index, problems)
    amounts: dict[str, Decimal | None] = {}
    if currency is not None:
        for field in ("base_price", "cost", "list_price"):
            amounts[field] = _amount(raw, field, currency, index, problems, required=field == "base_price")
        cost, ceiling = amounts["cost"], amounts["list_price"]
        floor = price_floor(cost=cost, currency=currency, min_margin_percent=min_margin_percent)
        if ceiling is not None and floor > ceiling:
            problems.append(
                _problem(
                    index,
                    "list_price",
                    "floor_above_ceiling",
                    f"The floor {floor} (cost plus {min_margin_percent}% margin) is above the list price {ceiling}.",
                )
            )
    if problems:
        raise ProductInvalidError(problems)
    assert currency is not None
    base_price = amounts["base_price"]
    assert base_price is not None
    return ProductFields(
        sku=str(chosen),
        name=name,
        currency=currency,
        base_price=base_price,
        cost=amounts["cost"],
        list_price=amounts["list_price"],
        inventory=inventory,
        active=active,
    )
