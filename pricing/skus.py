"""The SKU rule, written once: Python checks, the path parameters, the OpenAPI contract and the JS insert.

A SKU is used as a Redis key suffix, a URL path segment and a CSV cell, so it is
kept to letters, digits, ``.``, ``_`` and ``-`` — matched in full (``ABC\\n`` is not a SKU).
"""

from __future__ import annotations

from typing import Any

from app.errors import ERROR_CODES, ApiError
from app.path_parameters import PathRule
from app.text_rules import FullMatch

SKU = FullMatch(r"[A-Za-z0-9._-]{1,64}")
SKU_MESSAGE = ERROR_CODES["invalid_sku"].message
# The path parameters named ``sku`` are checked against the rule before any view runs (app.path_parameters).
SKU_PATH_RULE = PathRule(pattern=SKU, code="invalid_sku", message=SKU_MESSAGE)


def sku_valid(sku: object) -> bool:
    return SKU.matches(sku)


def sku_problem(value: object, *, field: str = "sku", index: int | None = None) -> dict[str, Any]:
    """A ``details`` row for a value that is not a SKU."""
    shown = repr(value[:80] if isinstance(value, str) else value)[:90]  # repr escapes NUL and lone surrogates
    row: dict[str, Any] = {"field": field, "code": "invalid_sku", "message": f"{shown}: {SKU_MESSAGE}"}
    return row if index is None else {"index": index, **row}


def invalid_sku(problems: list[dict[str, Any]]) -> ApiError:
    return ApiError("invalid_sku", SKU_MESSAGE, details=problems)
