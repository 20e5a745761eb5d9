"""OpenAPI generation tweaks shared by every app.

* Nested ``InputSerializer`` / ``OutputSerializer`` classes (the house style) get
  component names from their view (``KeyRotateApiInput``), so they never collide.
* The API-key authenticator is described as a bearer scheme plus the ``key``
  query parameter for publishable keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework.views import APIView


class StorefabricAutoSchema(AutoSchema):
    def get_serializer_name(self, serializer: Any, direction: Any) -> str:
        cls = serializer.__class__
        qualified = cls.__qualname__
        if "." in qualified:
            return qualified.replace(".", "").removesuffix("Serializer")
        return str(super().get_serializer_name(serializer, direction))


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[misc]
    target_class = "app.tenancy.authentication.ApiKeyAuthentication"
    name = ["secretKey", "publishableKey"]

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
