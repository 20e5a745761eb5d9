"""OpenAPI generation tweaks shared by every app.

* Nested ``InputSerializer`` / ``OutputSerializer`` classes (the house style) get
  component names from their view (``KeyRotateApiInput``), so they never collide.
* The API-key authenticator is described as a bearer scheme or (where a view takes
  publishable keys) the ``key`` query parameter: either one, not both.
* Every operation lists the error statuses it can answer, each with the one error
  body of :mod:`app.errors`, so a client (and the API fuzz test) can rely on them.
* A POST taking ``Idempotency-Key`` (``app.tenancy.idempotent_requests``) documents the
  header and its 409 (same key in flight) and 422 (same key, another body).
* A path parameter with a rule of ``settings.PATH_PARAMETER_RULES`` (``sku``, ``prefix``)
  documents it as its ``pattern``.
* A DELETE that declares a body (``DELETE /v1/origins``) documents it;
  drf-spectacular documents bodies of PUT, PATCH and POST only.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.http import HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers
from rest_framework.views import APIView

from app.errors import ERROR_CODES
from app.path_parameters import path_rules
from app.tenancy.idempotent_requests import HEADER as IDEMPOTENCY_HEADER
from app.tenancy.idempotent_requests import MAX_KEY_LENGTH as MAX_IDEMPOTENCY_KEY_LENGTH

BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class ErrorDetailSerializer(serializers.Serializer[Any]):
    field = serializers.CharField(allow_null=True, required=False, help_text="The field at fault, when one is.")
    code = serializers.CharField()
    message = serializers.CharField()
    index = serializers.IntegerField(required=False, help_text="The row of a batch at fault (events, bulk).")


class ErrorSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="One of the codes in app/errors.py; fixed for a given status.")
    message = serializers.CharField(help_text="What was wrong and how to fix it.")
    request_id = serializers.CharField(help_text="Also in the X-Request-ID response header.")
    details = ErrorDetailSerializer(many=True, required=False)


class ErrorResponseSerializer(serializers.Serializer[Any]):
    error = ErrorSerializer()


def _error_statuses(operation: dict[str, Any], method: str) -> set[int]:
    """The error statuses an operation can answer, from what it takes and how it authenticates.

    Every operation may answer 503 ``database_unavailable`` (``app.db_availability``: each one
    authenticates or reads through PostgreSQL, even the price lookup for a key this process
    never saw); ``POST /v1/events`` declares its own 503, which adds ``broker_unavailable``.
    """
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    locations = {parameter["in"] for parameter in operation.get("parameters", [])}
    statuses: set[int] = {400, 503}  # invalid_characters (app.input_guard); database_unavailable
    if "secretKey" in schemes:
        statuses |= {401, 403, 429}  # no, unknown or revoked key; key kind, origin; limit
    if "cookieAuth" in schemes:
        statuses |= {401, 403}  # not signed in; not staff, or no CSRF token
    if "path" in locations:
        statuses.add(404)
    if "requestBody" in operation:
        statuses.add(415)
    if method in BODY_METHODS:
        statuses.add(413)  # BodySizeLimitMiddleware reads Content-Length of any body, declared or not
    return statuses


def _path_patterns(operation: dict[str, Any]) -> None:
    """Document each path parameter's rule (``app.path_parameters``) as its ``pattern``."""
    rules = path_rules()
    for parameter in operation.get("parameters", []):
        rule = rules.get(parameter["name"]) if parameter["in"] == "path" else None
        if rule is not None:
            parameter["schema"]["pattern"] = rule.pattern.ecmascript


def _idempotency_parameter() -> dict[str, Any]:
    return {
        "in": "header",
        "name": IDEMPOTENCY_HEADER,
        "required": False,
        "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH},
        "description": "Retry safely: the same key and body answer the first answer again (kept 24 h); "
        "the same key while the first is running is a 409, with another body a 422.",
    }


def _error_description(status: int) -> str:
    codes = ", ".join(f"`{error.code}`" for error in ERROR_CODES.values() if error.status == status)
    return f"An error; `error.code` is one of {codes}."


class StorefabricAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: Any) -> str:
        cls = serializer.__class__
        qualified = cls.__qualname__
        if "." in qualified:
            return qualified.replace(".", "").removesuffix("Serializer")
        return str(super().get_serializer_name(serializer, direction))

    def get_request_serializer(self) -> Any:
        if self.method == "DELETE":
            return None  # a DELETE has a body only when its view declares one with extend_schema(request=...)
        return super().get_request_serializer()

    def _get_request_body(self, direction: Any = "request") -> Any:
        body = super()._get_request_body(direction)
        serializer = self.get_request_serializer() if self.method == "DELETE" else None
        if body is None and serializer is not None:
            schema = self.resolve_serializer(serializer, direction).ref
            body = {"content": {media: {"schema": schema} for media in self.map_parsers()}, "required": True}
        return body

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation["responses"]
        _path_patterns(operation)
        statuses = _error_statuses(operation, self.method)
        if getattr(getattr(self.view, self.method.lower(), None), "takes_idempotency_key", False):
            operation.setdefault("parameters", []).append(_idempotency_parameter())
            statuses |= {409, 422}
        for status in sorted(statuses):
            responses.setdefault(str(status), self._error_response_ref(status))
        for code, response in responses.items():
            if int(code) >= 400 and "content" not in response and "$ref" not in response:
                response["content"] = self._error_content()  # declared with a description only
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_content(self) -> dict[str, Any]:
        return {"application/json": {"schema": self.resolve_serializer(ErrorResponseSerializer, "response").ref}}

    def _error_response_ref(self, status: int) -> dict[str, str]:
        """One shared ``components/responses`` entry per status, so each operation only refers to it."""
        component = ResolvedComponent(
            name=HTTPStatus(status).phrase.replace(" ", ""),
            type=ResolvedComponent.RESPONSE,
            object=f"error-{status}",
            schema={"description": _error_description(status), "content": self._error_content()},
        )
        self.registry.register_on_missing(component)
        return dict(component.ref)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[misc]
    target_class = "app.tenancy.authentication.ApiKeyAuthentication"
    name = ["secretKey", "publishableKey"]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[Any]]]:
        if getattr(auto_schema.view, "publishable_allowed", False):
            return [{"secretKey": []}, {"publishableKey": []}]  # either key, as two alternatives
        return [{"secretKey": []}]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "http", "scheme": "bearer", "description": "Secret key: Authorization: Bearer sk_…"},
            {"type": "apiKey", "in": "query", "name": "key", "description": "Publishable key pk_… (browsers)"},
        ]


def documented(view: Callable[..., HttpResponse], documentation: type[APIView]) -> Callable[..., HttpResponse]:
    """Route the plain (hot-path) ``view`` while drf-spectacular describes it with ``documentation``.

    The style guide lets hot paths step outside DRF; this keeps /v1/schema complete.
    """
    view.cls = documentation  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return view
