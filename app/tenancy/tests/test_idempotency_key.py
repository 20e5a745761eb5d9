"""Idempotency-Key on creating POSTs: replay, in flight, reused with another body; only successes are kept."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from app.tenancy.idempotent_requests import idempotent_post
from app.tenancy.models import ApiKey, AuditEntry, IdempotentRequest

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


def test_a_failed_validation_is_not_kept_so_the_key_can_be_sent_again_corrected(alice) -> None:
    client = alice.client()
    refused = _rotate(client, {"kind": "zz"}, "rotate-4")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "validation_failed"
    assert not IdempotentRequest.objects.filter(key="rotate-4").exists()

    corrected = _rotate(client, {"kind": "pk"}, "rotate-4")
    again = _rotate(client, {"kind": "pk"}, "rotate-4")

    assert corrected.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in corrected
    assert again["Idempotent-Replayed"] == "true"
    assert ApiKey.objects.filter(retailer=alice.retailer, kind="pk").count() == 2


def test_a_rotated_secret_key_is_never_stored_and_a_replay_answers_it_as_null(alice) -> None:
    client = alice.client()
    first = _rotate(client, {"kind": "sk"}, "rotate-5")
    replay = _rotate(client, {"kind": "sk"}, "rotate-5")

    raw = first.json()["key"]
    assert raw.startswith("sk_")
    assert raw.encode() not in bytes(IdempotentRequest.objects.get(key="rotate-5").response_body)
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == {**first.json(), "key": None}
    assert ApiKey.objects.filter(retailer=alice.retailer, kind="sk").count() == 2


class RefusingApi(APIView):
    """A creating POST that writes, then answers an error (as a view may on a business rule)."""

    @idempotent_post
    def post(self, request: Request) -> Response:
        AuditEntry.objects.create(actor="test", entity="thing", entity_id="1", action="create")
        return Response({"error": {"code": "conflict"}}, status=409)


def _post_to(view: type[APIView], tenant, key: str) -> Any:
    request = APIRequestFactory().post(
        "/v1/things",
        {"size": 1},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {tenant.secret_key}",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    return view.as_view()(request)


def test_an_error_answer_is_not_kept_and_its_writes_roll_back(alice) -> None:
    first = _post_to(RefusingApi, alice, "thing-1")
    second = _post_to(RefusingApi, alice, "thing-1")

    assert first.status_code == second.status_code == 409
    assert "Idempotent-Replayed" not in second
    assert not AuditEntry.objects.filter(entity="thing").exists()
    assert not IdempotentRequest.objects.filter(key="thing-1").exists()


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
