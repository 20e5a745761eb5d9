"""``/v1/webhook-endpoints``: input answers, the secret shown once, tenancy."""

from __future__ import annotations

import pytest

from notifications.models import WebhookEndpoint
from notifications.secrets import secret_decrypt

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:9/hook"


def _create(tenant, url: str = URL, event_types: list[str] | None = None):
    body = {"url": url, "event_types": ["prices.changed"] if event_types is None else event_types}
    return tenant.client().post("/v1/webhook-endpoints", body, format="json")


def _code(response) -> str:
    return response.json()["error"]["code"]


def test_create_shows_the_secret_once_and_stores_it_encrypted(alice) -> None:
    created = _create(alice)

    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    listed = alice.client().get("/v1/webhook-endpoints").json()
    assert "secret" not in listed[0]
    assert secret not in str(listed)
    stored = WebhookEndpoint.objects.get()
    assert secret not in stored.secret_encrypted
    assert secret_decrypt(stored.secret_encrypted) == secret


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw@127.0.0.1/hook",
        "http://127.0.0.1/" + "a" * 2048,
        "ftp://127.0.0.1/hook",
        "not a url",
        "http:///nohost",
    ],
)
def test_bad_urls_are_invalid_url(alice, url: str) -> None:
    response = _create(alice, url)

    assert response.status_code == 400
    assert _code(response) == "invalid_url"


def test_plain_http_is_refused_where_only_https_is_allowed(settings, alice) -> None:
    settings.WEBHOOK_HTTPS_ONLY = True

    response = _create(alice)

    assert (response.status_code, _code(response)) == (400, "invalid_url")


def test_an_idn_host_is_stored_as_punycode(alice, resolver) -> None:
    resolver({"xn--bcher-kva.example": ["93.184.216.34"]})

    response = _create(alice, "http://bücher.example/hook")

    assert response.status_code == 201
    assert response.json()["url"] == "http://xn--bcher-kva.example/hook"


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "100.64.1.1"])
def test_a_host_resolving_to_a_private_address_is_private_address(alice, resolver, address: str) -> None:
    resolver({"hooks.example": [address]})

    response = _create(alice, "http://hooks.example/in")

    assert (response.status_code, _code(response)) == (400, "private_address")


def test_localhost_is_private_address_when_no_allowance(settings, alice) -> None:
    settings.WEBHOOK_ALLOWED_NETWORKS = []

    response = _create(alice, "http://localhost:8080/hook")

    assert (response.status_code, _code(response)) == (400, "private_address")


@pytest.mark.parametrize("event_types", [[], ["price.changed"], ["prices.changed", "nope"]])
def test_unknown_or_empty_event_types(alice, event_types: list[str]) -> None:
    response = _create(alice, event_types=event_types)

    assert (response.status_code, _code(response)) == (400, "unknown_event_type")


def test_the_same_url_twice_is_a_conflict(alice) -> None:
    assert _create(alice).status_code == 201

    response = _create(alice)

    assert (response.status_code, _code(response)) == (409, "endpoint_exists")


def test_more_than_the_maximum_is_422(settings, alice) -> None:
    settings.WEBHOOK_ENDPOINTS_MAX = 2
    assert _create(alice, "http://127.0.0.1:9/a").status_code == 201
    assert _create(alice, "http://127.0.0.1:9/b").status_code == 201

    response = _create(alice, "http://127.0.0.1:9/c")

    assert (response.status_code, _code(response)) == (422, "too_many_endpoints")


def test_another_retailer_s_endpoint_is_404_everywhere(alice, bob) -> None:
    endpoint_id = _create(alice).json()["id"]
    client = bob.client()

    answers = [
        client.get(f"/v1/webhook-endpoints/{endpoint_id}"),
        client.patch(f"/v1/webhook-endpoints/{endpoint_id}", {"enabled": False}, format="json"),
        client.delete(f"/v1/webhook-endpoints/{endpoint_id}"),
        client.post(f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
        client.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries"),
        client.post(f"/v1/webhook-endpoints/{endpoint_id}/ping"),
        client.post(f"/v1/webhook-endpoints/{endpoint_id}/replay", {"dry_run": False}, format="json"),
    ]

    assert [answer.status_code for answer in answers] == [404] * len(answers)
    assert client.get("/v1/webhook-endpoints").json() == []
    assert WebhookEndpoint.objects.get(pk=endpoint_id).enabled


def test_rotate_shows_a_new_secret_once(alice) -> None:
    created = _create(alice).json()

    rotated = alice.client().post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret")

    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]
    assert "secret" not in alice.client().get(f"/v1/webhook-endpoints/{created['id']}").json()


def test_a_publishable_key_cannot_manage_endpoints(alice, anon_client) -> None:
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice.publishable_key}")

    assert anon_client.get("/v1/webhook-endpoints").status_code in (401, 403)
