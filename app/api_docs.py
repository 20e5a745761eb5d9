"""The API docs page (/v1/docs): Redoc from our own static files, and nothing from another host.

Redoc's bundle comes from drf-spectacular-sidecar (``REDOC_DIST = "SIDECAR"``) and the page's
template drops drf-spectacular's Google Fonts links. Redoc 2 still puts an ``<img>`` of its
logo from cdn.redoc.ly in the sidebar, with no option to leave it out: the Content-Security-Policy
below keeps the browser from even sending that request, and from loading anything else that is
not ours (the page works offline and tells no third party who reads it).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView
from rest_framework.request import Request
from rest_framework.response import Response

# Redoc injects its styles inline (styled-components) and runs its search index in a blob: worker;
# it needs no eval (the browser test sees every refusal in the console).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ]
)


class ApiDocsView(SpectacularRedocView):
    template_name = "api_docs/redoc.html"

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response
