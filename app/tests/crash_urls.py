"""A URLconf for error-handling tests: one route that crashes, one with a tiny body limit."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from app.middleware import body_limit

handler404 = "app.errors.handler404"
handler500 = "app.errors.handler500"


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


@body_limit(64)
class EchoApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    throttle_classes: list[Any] = []

    def post(self, request: Any) -> Response:
        return Response({"received": request.data})


urlpatterns = [path("crash", crash), path("echo", EchoApi.as_view())]
