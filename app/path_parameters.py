"""Rules for path parameters by name (``<str:sku>``), checked once before any view runs.

``settings.PATH_PARAMETER_RULES`` maps a parameter name of the URL patterns to a
:class:`PathRule` by dotted string, so ``app/`` imports no domain app, and the OpenAPI
schema documents the same rule as the parameter's ``pattern`` (``app.schema``). Each
rule lives beside what it describes (the SKU in ``pricing.skus``, the key prefix in
``app.tenancy.keys``). Hot-path views, which run before ``process_view``, check their
own parameter with the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from app.errors import ApiError
from app.text_rules import FullMatch


@dataclass(frozen=True)
class PathRule:
    pattern: FullMatch
    code: str  # an error code of app.errors, answered when a value breaks the rule
    message: str


@cache
def path_rules() -> dict[str, PathRule]:
    return {name: import_string(dotted) for name, dotted in settings.PATH_PARAMETER_RULES.items()}


def path_parameters_check(kwargs: dict[str, Any]) -> None:
    """Raise the rule's ``ApiError`` for the first path parameter that breaks its rule."""
    rules = path_rules()
    for name, value in kwargs.items():
        rule = rules.get(name)
        if rule is not None and not rule.pattern.matches(value):
            shown = repr(value[:80] if isinstance(value, str) else value)  # repr escapes NUL and surrogates
            raise ApiError(
                rule.code,
                rule.message,
                details=[{"field": name, "code": rule.code, "message": f"{shown}: {rule.message}"}],
            )
