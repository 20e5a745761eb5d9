"""Views for the hot-route tests: an exact route with a small body limit, a prefix route."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from app.middleware import body_limit


@body_limit(64)
def echo_length(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"length": len(request.body)})


def named(request: HttpRequest, name: str) -> HttpResponse:
    return JsonResponse({"name": name})
