"""One table of error codes, one exception type, one JSON shape.

Every error the service returns — from DRF views, plain views, middleware,
unknown URLs and crashes — is::

    {"error": {"code": ..., "message": ..., "request_id": ..., "details": [...]}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf_exceptions

from app.request_context import current_request_id

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ErrorCode:
    code: str
    status: int
    message: str


def _codes(*entries: tuple[str, int, str]) -> dict[str, ErrorCode]:
    return {code: ErrorCode(code, status, message) for code, status, message in entries}


ERROR_CODES: dict[str, ErrorCode] = _codes(
    ("malformed_request", 400, "The request could not be understood."),
    ("validation_failed", 400, "Some fields are invalid; see details."),
    ("invalid_json", 400, "The body is not valid JSON."),
    ("invalid_characters", 400, "Some text holds a character that cannot be stored (NUL or a lone surrogate)."),
    ("invalid_sku", 400, "A SKU is 1 to 64 characters, each a letter, a digit, '.', '_' or '-'."),
    ("too_many_skus", 400, "Ask for 1 to 100 SKUs in one call."),
    ("invalid_decimal", 400, "Amounts are decimal strings with no more digits than the currency allows."),
    ("negative_amount", 400, "Amounts must not be negative."),
    ("unknown_currency", 400, "The currency is not an ISO 4217 code we support."),
    ("floor_above_ceiling", 400, "Cost plus minimum margin would exceed the list price."),
    ("secret_key_in_url", 400, "Secret keys must be sent in the Authorization header, never in a URL."),
    ("event_too_old", 400, "The event is older than the dedup window and cannot be accepted."),
    ("invalid_url", 400, "The URL must be absolute http(s), with no user info, at most 2,048 characters."),
    ("private_address", 400, "The URL's host resolves to an address that is not publicly routable."),
    ("unknown_event_type", 400, "Name one or more event types from the list in the API description."),
    ("invalid_confirmation", 400, "This confirmation link is unknown or has expired; add the address again."),
    ("not_authenticated", 401, "Send a key: Authorization: Bearer sk_… or ?key=pk_…"),
    ("invalid_key", 401, "The key is unknown."),
    ("revoked_key", 401, "The key was revoked."),
    ("secret_key_required", 403, "This endpoint needs a secret key (sk_…)."),
    ("origin_not_allowed", 403, "This origin is not on the retailer's allowed list."),
    ("permission_denied", 403, "You may not do this."),
    ("not_found", 404, "No such resource."),
    ("unknown_sku", 404, "No active product has this SKU."),
    ("method_not_allowed", 405, "This method is not allowed here."),
    ("not_acceptable", 406, "Cannot produce a response in the requested format."),
    ("idempotency_key_in_flight", 409, "A request with this Idempotency-Key is still being processed."),
    ("conflict", 409, "The resource changed; retry."),
    ("endpoint_exists", 409, "This URL is already one of your webhook endpoints."),
    ("address_exists", 409, "This address is already one of your notification addresses."),
    ("delivery_in_flight", 409, "This delivery is being sent right now; retry once it finished."),
    ("not_running", 409, "The backup is not running: it is done, failed or cancelled."),
    ("backup_running", 409, "The backup is still running; cancel it or wait for it to end."),
    ("backup_not_done", 409, "Only a backup that finished (state done) can be restored or verified."),
    ("payload_too_large", 413, "The body is larger than this endpoint accepts."),
    ("request_line_too_large", 414, "The request line (path and query) is longer than the server accepts."),
    ("unsupported_media_type", 415, "Send application/json."),
    ("range_not_satisfiable", 416, "The Range starts past the end of the file; Content-Range gives its size."),
    ("idempotency_key_reused", 422, "This Idempotency-Key was used with a different body."),
    ("too_many_endpoints", 422, "You have as many webhook endpoints as allowed; delete one first."),
    ("request_headers_too_large", 431, "A request header is larger than the server accepts, or there are too many."),
    ("rate_limited", 429, "Too many requests; retry after the number of seconds in Retry-After."),
    ("internal_error", 500, "Something went wrong on our side; the request id identifies it."),
    ("service_unavailable", 503, "A dependency is unavailable; retry after Retry-After seconds."),
    ("database_unavailable", 503, "The database is unavailable right now; retry after Retry-After seconds."),
    ("downloads_busy", 503, "As many downloads as this server allows are running; retry after Retry-After seconds."),
    ("broker_unavailable", 503, "The job queue is not accepting work right now; retry after Retry-After seconds."),
)


class ApiError(Exception):
    """Raise anywhere in request handling; rendered by :func:`error_response`."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.error = ERROR_CODES[code]
        self.message = message or self.error.message
        self.details = details or []
        self.headers = headers or {}
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return self.error.status


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": current_request_id()}
    if details:
        body["details"] = details
    return {"error": body}


AUTH_CHALLENGE = 'Bearer realm="storefabric"'


def error_response(exc: ApiError) -> HttpResponse:
    response = HttpResponse(
        orjson.dumps(error_body(exc.error.code, exc.message, exc.details)),
        status=exc.status,
        content_type="application/json",
    )
    if exc.status == 401:
        response["WWW-Authenticate"] = AUTH_CHALLENGE  # a 401 names how to authenticate (RFC 9110)
    for name, value in exc.headers.items():
        response[name] = value
    return response


_DRF_CODE_MAP: dict[type[drf_exceptions.APIException], str] = {
    drf_exceptions.ParseError: "invalid_json",
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "invalid_key",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "rate_limited",
}


def validation_details(detail: Any, prefix: str = "") -> list[dict[str, Any]]:
    """Flatten DRF's nested validation errors into ``details`` rows."""
    rows: list[dict[str, Any]] = []
    if isinstance(detail, dict):
        for field, sub in detail.items():
            name = f"{prefix}.{field}" if prefix else str(field)
            rows.extend(validation_details(sub, name))
    elif isinstance(detail, list):
        for position, sub in enumerate(detail):
            if isinstance(sub, (dict, list)):
                rows.extend(validation_details(sub, f"{prefix}[{position}]" if prefix else str(position)))
            else:
                rows.extend(validation_details(sub, prefix))
    else:
        code = getattr(detail, "code", "invalid")
        rows.append({"field": prefix or None, "code": code, "message": str(detail)})
    return rows


# The database is away, or failed the statement (timeout, deadlock): a 503 to retry, never a 500.
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


def database_unavailable_error() -> ApiError:
    """The 503 every endpoint answers while the database is away (``app.db_availability``)."""
    return ApiError("database_unavailable", headers={"Retry-After": str(settings.DB_UNAVAILABLE_RETRY_AFTER)})


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """DRF ``EXCEPTION_HANDLER``: map every DRF exception onto the code table."""
    if isinstance(exc, ApiError):
        return error_response(exc)
    if isinstance(exc, drf_exceptions.ValidationError):
        return error_response(ApiError("validation_failed", details=validation_details(exc.detail)))
    if isinstance(exc, drf_exceptions.APIException):
        code = next((c for cls, c in _DRF_CODE_MAP.items() if isinstance(exc, cls)), "malformed_request")
        headers = {}
        wait = getattr(exc, "wait", None)
        if wait:
            headers["Retry-After"] = str(int(wait) + 1)
        return error_response(ApiError(code, str(exc.detail), headers=headers))
    if isinstance(exc, DATABASE_ERRORS):
        log.warning("database_unavailable", error=f"{type(exc).__name__}: {exc}")
        return error_response(database_unavailable_error())
    if isinstance(exc, Http404):
        return error_response(ApiError("not_found"))
    if isinstance(exc, PermissionDenied):
        return error_response(ApiError("permission_denied"))
    return None


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(ApiError("not_found", f"No route matches {request.path}."))


def handler500(request: HttpRequest) -> HttpResponse:
    return error_response(ApiError("internal_error"))


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(ApiError("malformed_request"))


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(ApiError("permission_denied"))
