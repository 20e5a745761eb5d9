"""Answer the hot API routes right after ``SecurityMiddleware``, before the rest of the stack.

Sessions, CSRF, auth, messages, static files and clickjacking headers do nothing
for a request answered with JSON to an API key, yet cost about as much as a price
lookup itself (~0.2 ms a request on the price path and ~0.4 ms on the events path,
measured with ``bench/prices_bench.py`` and ``bench/ingest_bench.py``). The hot
views are named in ``settings.HOT_ROUTES`` by dotted string, so ``app/`` imports no
domain app; their routes stay in the apps' ``urls.py`` too, for the OpenAPI schema
and in case this middleware is removed. A hot view with its own body limit
(``app.middleware.body_limit``) has it enforced here, as ``BodySizeLimitMiddleware``
does for the views behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from app.middleware import body_limit_refusal, view_body_limit

View = Callable[..., HttpResponse]


class HotRouteMiddleware:
    """``HOT_ROUTES`` maps an exact path to a view, or a prefix ending in ``/`` to a view that
    takes the rest of the path (one segment, no ``/``) as its second argument."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        routes = {route: import_string(view) for route, view in settings.HOT_ROUTES.items()}
        served = {route: (view, view_body_limit(view)) for route, view in routes.items()}
        self.exact: dict[str, tuple[View, int]] = {r: hot for r, hot in served.items() if not r.endswith("/")}
        self.prefixed = [(r, hot) for r, hot in served.items() if r.endswith("/")]

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        hot = self.exact.get(path)
        if hot is not None:
            return self._serve(hot, request)
        for prefix, hot in self.prefixed:
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                return self._serve(hot, request, path[len(prefix) :])
        return self.get_response(request)

    @staticmethod
    def _serve(hot: tuple[View, int], request: HttpRequest, *args: Any) -> HttpResponse:
        view, limit = hot
        refusal = body_limit_refusal(request, limit)
        response = refusal if refusal is not None else view(request, *args)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))  # keep-alive, as CommonMiddleware would
        return response
