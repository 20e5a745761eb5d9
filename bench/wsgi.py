"""The benchmark's WSGI entry: the real application, plus a bare baseline in the same process.

``/bench/bare`` is a Django ``JsonResponse`` view behind a handler with no
middleware and no database; every other path goes to ``app.wsgi.application``
with the production settings. One gunicorn, one configuration, both measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.urls import path

from app.wsgi import application as storefabric

BARE_PATH = "/bench/bare"


def bare_price(request: HttpRequest) -> HttpResponse:
    response = JsonResponse({"sku": "BARE-1", "price": "19.99", "currency": "USD", "stale": False})
    response["Content-Length"] = str(len(response.content))  # keep-alive, as CommonMiddleware does for the app
    return response


urlpatterns = [path(BARE_PATH.lstrip("/"), bare_price)]


class BareHandler(WSGIHandler):
    """Django's WSGI handler with the middleware stack left out and this module as URLconf."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        request.urlconf = __name__  # type: ignore[attr-defined]
        return super().get_response(request)


bare = BareHandler()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == BARE_PATH:
        return bare(environ, start_response)  # type: ignore[no-any-return]
    return storefabric(environ, start_response)  # type: ignore[no-any-return]
