"""Idempotency-Key on creating POSTs: replay, in flight, reused with another body."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from app.tenancy.idempotent_requests import idempotent_post
from app.tenancy.models import ApiKey, IdempotentRequest

ROUTE = "v1/keys/rotate"


def _rotate(client, body: dict, key: str):
    return client.post("/v1/keys/rotate", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_and_body_replays_the_first_answer(alice) -> None:
    client = alice.client()
    first = _rotate(client, {"kind": "pk"}, "rotate-1")
    second = _rotate(client, {"kind": "pk"}, "rotate-1")
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert ApiKey.objects.filter(retailer=alice.retailer, kind="pk").count() == 2


def test_same_key_with_another_body_is_422(alice) -> None:
    client = alice.client()
    _rotate(client, {"kind": "pk"}, "rotate-2")
    response = _rotate(client, {"kind": "sk"}, "rotate-2")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert ApiKey.objects.filter(retailer=alice.retailer, kind="sk").count() == 1


def test_same_key_still_in_flight_is_409(alice) -> None:
    body = json.dumps({"kind": "pk"}, separators=(",", ":")).encode()
    IdempotentRequest.objects.create(
        retailer=alice.retailer, route=ROUTE, key="rotate-3", body_hash=hashlib.sha256(body).hexdigest()
    )
    response = alice.client().post(
        "/v1/keys/rotate", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="rotate-3"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_flight"


def test_keys_are_scoped_per_retailer(alice, bob) -> None:
    assert _rotate(alice.client(), {"kind": "pk"}, "shared-key").status_code == 201
    response = _rotate(bob.client(), {"kind": "sk"}, "shared-key")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response


def test_a_failed_validation_is_replayed_too(alice) -> None:
    client = alice.client()
    first = _rotate(client, {"kind": "zz"}, "rotate-4")
    second = _rotate(client, {"kind": "zz"}, "rotate-4")
    assert first.status_code == second.status_code == 400
    assert second.json()["error"]["code"] == "validation_failed"


class AcceptedApi(APIView):
    """A creating POST that answers 202 with where to look and when, counting its runs."""

    runs = 0

    @idempotent_post
    def post(self, request: Request) -> Response:
        AcceptedApi.runs += 1
        response = Response({"job": AcceptedApi.runs}, status=202)
        response["Location"] = f"/v1/jobs/{AcceptedApi.runs}"
        response["Retry-After"] = "5"
        return response


def test_a_replay_keeps_the_headers_a_client_acts_on(alice) -> None:
    AcceptedApi.runs = 0

    def post() -> Any:
        request = APIRequestFactory().post(
            "/v1/jobs",
            {"size": 1},
            format="json",
            HTTP_AUTHORIZATION=f"Bearer {alice.secret_key}",
            HTTP_IDEMPOTENCY_KEY="job-1",
        )
        return AcceptedApi.as_view()(request)

    first = post().render()  # the view's own answer is a DRF Response, rendered later by the stack
    again = post()

    assert AcceptedApi.runs == 1
    assert "Idempotent-Replayed" not in first
    assert again["Idempotent-Replayed"] == "true"
    assert (again.status_code, again.content) == (first.status_code, first.content) == (202, b'{"job":1}')
    for header in ("Location", "Retry-After", "Content-Type"):
        assert again[header] == first[header], header
