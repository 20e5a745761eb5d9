"""Request-wide concerns: the request id and the body size limit."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from app.errors import ApiError, error_response
from app.request_context import accept_request_id, bind_request_id, reset_request_id

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_META = "HTTP_X_REQUEST_ID"  # read from META: request.headers copies every header first


class RequestIdMiddleware:
    """Take ``X-Request-ID`` from the caller (or make one) and put it everywhere."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accept_request_id(request.META.get(REQUEST_ID_META))
        token = bind_request_id(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
            reset_request_id(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


def body_limit(max_bytes: int) -> Callable[[Any], Any]:
    """Give a view (function or class) its own request body limit in bytes."""

    def mark(view: Any) -> Any:
        view.max_body_bytes = max_bytes
        return view

    return mark


def view_body_limit(view_func: Any) -> int:
    """The body limit in bytes a view declared with :func:`body_limit`, or ``MAX_BODY_BYTES``."""
    for candidate in (view_func, getattr(view_func, "cls", None), getattr(view_func, "view_class", None)):
        limit = getattr(candidate, "max_body_bytes", None)
        if limit is not None:
            return int(limit)
    return int(settings.MAX_BODY_BYTES)


def _too_large(limit: int) -> HttpResponse:
    return error_response(ApiError("payload_too_large", f"The body must be at most {limit} bytes."))


def body_limit_refusal(request: HttpRequest, limit: int) -> HttpResponse | None:
    """A JSON 413 when the body is over ``limit`` bytes (declared, or read from a chunked stream)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    declared = request.META.get("CONTENT_LENGTH")
    if declared:
        try:
            if int(declared) > limit:
                return _too_large(limit)
        except ValueError:
            return error_response(ApiError("malformed_request", "Content-Length is not a number."))
        return None
    if request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        stream = request.META["wsgi.input"]
        body = stream.read(limit + 1)
        if len(body) > limit:
            return _too_large(limit)
        request._stream = io.BytesIO(body)  # type: ignore[attr-defined]
        request.META["CONTENT_LENGTH"] = str(len(body))
    return None


class BodySizeLimitMiddleware:
    """Refuse bodies over the route's limit with a JSON 413.

    DRF parses JSON straight from the stream, so Django's own upload limit does
    not protect it: the limit is checked against ``Content-Length`` and, for a
    body sent without one (chunked), against the bytes actually read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        return body_limit_refusal(request, view_body_limit(view_func))
