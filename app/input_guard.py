"""One guard, before any view, for the request text that can reach the database: 400 ``invalid_characters``.

It checks the path, every query parameter (names too) and the headers the service stores
(``Idempotency-Key``; ``X-Request-ID``, echoed, logged and kept in audit rows) with
:func:`app.text_rules.text_storable`; JSON bodies are checked by the parser
(``app.parsers``), event batches per event by their validation. A clean request costs a few
``memchr`` calls (see :func:`app.text_rules.text_storable`) over the query parameters Django
parses anyway, the path and two headers: 1-2 µs on an idle core, where a price lookup costs
~900 µs of CPU (~2,200 req/s on 2 cores, README "Benchmarks"). The path parameters' own
rules (a SKU, a key prefix) are checked in :meth:`InputGuardMiddleware.process_view`, once
the route has named them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from app.errors import ApiError, error_response
from app.path_parameters import path_parameters_check
from app.tenancy.authentication import secret_key_in_url_refuse
from app.text_rules import field_label, text_storable

STORED_HEADERS = {"Idempotency-Key": "HTTP_IDEMPOTENCY_KEY", "X-Request-ID": "HTTP_X_REQUEST_ID"}
MESSAGE = "{field} holds a character that cannot be stored (NUL or a lone surrogate)."


def invalid_characters(fields: list[str]) -> ApiError:
    """The one answer for text PostgreSQL cannot store, naming each field (``params.tags[2]``, ``sku``)."""
    details = [
        {"field": field, "code": "invalid_characters", "message": MESSAGE.format(field=field)} for field in fields
    ]
    return ApiError("invalid_characters", details=details)


def _path_fields(path: str) -> list[str]:
    """The path parameters that hold the bad characters, or ``path`` when no route names them."""
    try:
        kwargs = resolve(path).kwargs
    except Resolver404:
        return ["path"]
    named = [name for name, value in kwargs.items() if isinstance(value, str) and not text_storable(value)]
    return named or ["path"]


def _query_fields(request: HttpRequest) -> list[str]:
    """The query parameters holding what cannot be stored (Django decodes bad UTF-8 as U+FFFD, never a surrogate)."""
    return [
        field_label(name)
        for name, values in request.GET.lists()
        if not (text_storable(name) and all(map(text_storable, values)))
    ]


def request_text_problems(request: HttpRequest) -> list[str]:
    """The parts of the request outside its body (path parameters, query parameters, headers) that PostgreSQL
    cannot store."""
    fields: list[str] = []
    if not text_storable(request.path_info):
        fields += _path_fields(request.path_info)
    if request.META.get("QUERY_STRING"):
        fields += _query_fields(request)  # request.GET is parsed once per request; every API view reads it
    for header, meta in STORED_HEADERS.items():
        value = request.META.get(meta)
        if value is not None and not text_storable(value):
            fields.append(header)
    return fields


class InputGuardMiddleware:
    """Refuse odd bytes before any view (hot routes included) and broken path parameters before a DRF view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        fields = request_text_problems(request)
        if fields:
            return error_response(invalid_characters(fields))
        try:
            secret_key_in_url_refuse(request)  # before SecurityMiddleware's redirect echoes it
        except ApiError as error:
            return error_response(error)
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        try:
            path_parameters_check(view_kwargs)
        except ApiError as error:
            return error_response(error)
        return None
