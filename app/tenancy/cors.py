"""CORS for publishable-key calls: echo only an allowed origin, always ``Vary: Origin``."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from app.tenancy.authentication import AuthContext


def cors_apply(request: HttpRequest, response: HttpResponse, context: AuthContext | None) -> HttpResponse:
    response["Vary"] = "Origin"
    origin = request.META.get("HTTP_ORIGIN")
    if context is not None and origin and origin in context.allowed_origins:
        response["Access-Control-Allow-Origin"] = origin
    return response
