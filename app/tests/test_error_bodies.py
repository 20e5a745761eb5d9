"""Every error is the same JSON shape with the right status, whatever raised it."""

from __future__ import annotations

import io

import pytest
from django.test import Client

pytestmark = pytest.mark.urls("app.tests.crash_urls")


def _error(response) -> dict:
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


def test_a_crash_is_a_json_500_with_the_request_id() -> None:
    client = Client(raise_request_exception=False)
    response = client.get("/crash", HTTP_X_REQUEST_ID="crash-1")
    assert response.status_code == 500
    error = _error(response)
    assert error["code"] == "internal_error"
    assert error["request_id"] == "crash-1"
    assert "boom" not in response.content.decode()


def test_body_over_the_route_limit_is_413_from_content_length(client: Client) -> None:
    response = client.post("/echo", data="x" * 65, content_type="application/json")
    assert response.status_code == 413
    assert _error(response)["code"] == "payload_too_large"


def test_chunked_body_over_the_limit_is_413_from_the_stream(client: Client) -> None:
    body = b'{"a": "' + b"x" * 100 + b'"}'
    response = client.generic(
        "POST",
        "/echo",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        CONTENT_TYPE="application/json",
        **{"wsgi.input": io.BytesIO(body)},
    )
    assert response.status_code == 413


def test_chunked_body_within_the_limit_is_read(client: Client) -> None:
    body = b'{"a": 1}'
    response = client.generic(
        "POST",
        "/echo",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        CONTENT_LENGTH="",
        CONTENT_TYPE="application/json",
        **{"wsgi.input": io.BytesIO(body)},
    )
    assert response.status_code == 200
    assert response.json() == {"received": {"a": 1}}


def test_wrong_content_type_is_415(client: Client) -> None:
    response = client.post("/echo", data="a=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert _error(response)["code"] == "unsupported_media_type"


def test_malformed_json_is_400(client: Client) -> None:
    response = client.post("/echo", data='{"a": ', content_type="application/json")
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_json"


def test_wrong_method_is_405(client: Client) -> None:
    response = client.delete("/echo")
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"
