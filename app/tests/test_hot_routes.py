"""Hot routes are answered ahead of the rest of the middleware, with their own body limits."""

from __future__ import annotations

import io

import pytest
from django.test import Client

HOT_ROUTES = {"/hot/echo": "app.tests.hot_views.echo_length", "/hot/named/": "app.tests.hot_views.named"}

pytestmark = [pytest.mark.urls("app.tests.crash_urls")]


@pytest.fixture
def client(settings) -> Client:
    settings.HOT_ROUTES = HOT_ROUTES
    return Client()  # a new handler: middleware built from these settings


def test_a_hot_route_skips_the_stack_behind_it_but_keeps_the_request_id(client: Client) -> None:
    response = client.post("/hot/echo", data="abc", content_type="text/plain", HTTP_X_REQUEST_ID="hot-1")

    assert response.status_code == 200
    assert response.json() == {"length": 3}
    assert response["Content-Length"] == str(len(response.content))  # keep-alive without CommonMiddleware
    assert response["X-Request-ID"] == "hot-1"
    assert "X-Frame-Options" not in response  # XFrameOptionsMiddleware never saw it
    assert "Cookie" not in response.get("Vary", "")  # nor did the session middleware


def test_the_rest_of_the_stack_still_serves_every_other_route(client: Client) -> None:
    response = client.post("/echo", data="{}", content_type="application/json")

    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"


def test_a_prefix_route_takes_one_path_segment(client: Client) -> None:
    assert client.get("/hot/named/abc").json() == {"name": "abc"}
    nested = client.get("/hot/named/a/b")
    assert nested.status_code == 404
    assert nested.json()["error"]["code"] == "not_found"


def test_a_body_over_the_hot_view_limit_is_413_by_content_length(client: Client) -> None:
    response = client.post("/hot/echo", data="x" * 65, content_type="text/plain")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_chunked_body_over_the_hot_view_limit_is_413_from_the_stream(client: Client) -> None:
    response = client.generic(
        "POST",
        "/hot/echo",
        content_type="text/plain",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(b"x" * 100)},
    )

    assert response.status_code == 413
