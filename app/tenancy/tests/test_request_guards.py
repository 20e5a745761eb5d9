"""What a hostile client sends around a request: an opaque origin, odd visitor ids, long or odd headers, prefixes."""

from __future__ import annotations

import pytest
from django.test import Client

from conftest import Tenant
from pricing.hotpath import MAX_VISITOR_LENGTH
from pricing.services import product_upsert


@pytest.fixture
def priced(alice: Tenant) -> None:
    product_upsert(retailer_id=alice.retailer.id, sku="SKU-1", data={"name": "Shoe", "base_price": "1.00"}, actor="t")


def _price(tenant: Tenant, query: str = "", **headers: str):
    return Client().get(f"/v1/prices/SKU-1?key={tenant.publishable_key}{query}", **headers)


@pytest.mark.usefixtures("priced")
def test_an_opaque_origin_is_not_an_allowed_origin(alice: Tenant) -> None:
    """Sandboxed iframes, file: pages and some redirects send ``Origin: null``; no retailer allows it."""
    response = _price(alice, HTTP_ORIGIN="null")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.usefixtures("priced")
def test_a_visitor_over_its_documented_length_or_with_a_nul_is_a_400(alice: Tenant) -> None:
    longest = _price(alice, "&visitor=" + "v" * MAX_VISITOR_LENGTH, HTTP_ORIGIN=alice.origin)
    too_long = _price(alice, "&visitor=" + "v" * (MAX_VISITOR_LENGTH + 1), HTTP_ORIGIN=alice.origin)
    nul = _price(alice, "&visitor=v%00", HTTP_ORIGIN=alice.origin)

    assert longest.status_code == 200
    assert too_long.status_code == nul.status_code == 400
    assert nul.json()["error"]["code"] == "invalid_characters"
    assert nul.json()["error"]["details"][0]["field"] == "visitor"


def test_an_idempotency_key_over_255_characters_is_a_400(alice: Tenant) -> None:
    client = alice.client()
    longest = client.post("/v1/keys/rotate", {"kind": "pk"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 255)
    too_long = client.post("/v1/keys/rotate", {"kind": "pk"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256)

    assert longest.status_code == 201
    assert too_long.status_code == 400


@pytest.mark.parametrize("prefix", ["pk_short", "xx_abcdefgh", "pk_abcdefgh%0A", "pk_abc.efgh"])
def test_a_key_prefix_that_no_key_can_have_is_a_400(alice: Tenant, prefix: str) -> None:
    response = alice.client().post(f"/v1/keys/{prefix}/revoke")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "prefix"


def test_a_well_formed_prefix_of_no_key_is_a_404(alice: Tenant) -> None:
    assert alice.client().post("/v1/keys/pk_abcdefgh/revoke").status_code == 404


@pytest.mark.usefixtures("priced")
def test_a_request_id_with_a_nul_is_a_400(alice: Tenant) -> None:
    response = _price(alice, HTTP_ORIGIN=alice.origin, HTTP_X_REQUEST_ID="abc\x00def")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "X-Request-ID"


@pytest.mark.usefixtures("priced")
def test_a_request_id_ending_in_a_newline_is_replaced_not_echoed(alice: Tenant) -> None:
    client = Client(raise_request_exception=False)
    response = client.get(
        f"/v1/prices/SKU-1?key={alice.publishable_key}", HTTP_ORIGIN=alice.origin, HTTP_X_REQUEST_ID="abc\n"
    )

    assert response.status_code == 200
    assert response["X-Request-ID"] not in ("abc\n", "abc")
