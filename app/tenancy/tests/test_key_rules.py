"""Each key rule has one status and one error code."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from app.tenancy.models import ApiKey
from app.tenancy.services import key_revoke


def _code(response) -> str:
    return response.json()["error"]["code"]


@pytest.mark.django_db
def test_no_key_is_401(anon_client: APIClient) -> None:
    response = anon_client.get("/v1/retailer")
    assert response.status_code == 401
    assert _code(response) == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="storefabric"'


@pytest.mark.django_db
def test_the_price_path_401_names_the_scheme_too(anon_client: APIClient) -> None:
    response = anon_client.get("/v1/prices/SKU-1?key=pk_not-a-real-key")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="storefabric"'


@pytest.mark.django_db
def test_unknown_key_is_401(anon_client: APIClient) -> None:
    anon_client.credentials(HTTP_AUTHORIZATION="Bearer sk_not-a-real-key")
    response = anon_client.get("/v1/retailer")
    assert response.status_code == 401
    assert _code(response) == "invalid_key"


def test_secret_key_answers_its_own_retailer(alice) -> None:
    response = alice.client().get("/v1/retailer")
    assert response.status_code == 200
    assert response.json()["name"] == "Alice"
    assert response["X-Request-ID"]


def test_publishable_key_on_secret_endpoint_is_403(alice, anon_client: APIClient) -> None:
    response = anon_client.get(f"/v1/retailer?key={alice.publishable_key}")
    assert response.status_code == 403
    assert _code(response) == "secret_key_required"


def test_secret_key_in_url_is_400(alice, anon_client: APIClient) -> None:
    response = anon_client.get(f"/v1/retailer?key={alice.secret_key}")
    assert response.status_code == 400
    assert _code(response) == "secret_key_in_url"


def test_revoked_key_is_401(alice, settings) -> None:
    settings.API_KEY_CACHE_TTL = 0
    client = alice.client()
    assert client.get("/v1/retailer").status_code == 200
    key_revoke(key=ApiKey.objects.get(retailer=alice.retailer, kind="sk"), actor="test")
    response = client.get("/v1/retailer")
    assert response.status_code == 401
    assert _code(response) == "revoked_key"


def test_request_id_is_echoed_in_header_and_error_body(anon_client: APIClient) -> None:
    response = anon_client.get("/v1/retailer", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    assert response.json()["error"]["request_id"] == "abc-123"


@pytest.mark.parametrize("order", ["sk_first", "pk_first"])
def test_a_secret_key_among_repeated_key_parameters_is_400(alice, anon_client: APIClient, order: str) -> None:
    keys = [alice.secret_key, alice.publishable_key]
    if order == "pk_first":
        keys.reverse()
    query = "&".join(f"key={key}" for key in keys)
    for path in ("/v1/retailer", "/v1/prices/SKU-1"):
        response = anon_client.get(f"{path}?{query}")
        assert response.status_code == 400
        assert _code(response) == "secret_key_in_url"


def test_a_repeated_key_parameter_is_ambiguous_and_400(alice, bob, anon_client: APIClient) -> None:
    response = anon_client.get(f"/v1/prices/SKU-1?key={alice.publishable_key}&key={bob.publishable_key}")
    assert response.status_code == 400
    assert _code(response) == "malformed_request"


@pytest.mark.parametrize("path", ["/v1/prices/SKU-1", "/v1/products"])
def test_a_secret_key_in_the_url_is_refused_before_the_https_redirect_can_echo_it(path) -> None:
    with override_settings(SECURE_SSL_REDIRECT=True):
        response = Client().get(f"{path}?key=sk_{'x' * 32}")  # plain http: the redirect would answer
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "secret_key_in_url"
    assert "sk_" not in response.get("Location", "")
