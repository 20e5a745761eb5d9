"""Products over the API: upsert with a recomputed price, validation (all-or-nothing), bulk, audit."""

from __future__ import annotations

import base64

import pytest
from django.test import override_settings

from app.tenancy.models import AuditEntry
from pricing.models import PriceSnapshot, Product, RepricingJob
from pricing.tests.conftest import PRODUCT, product_put, shards_run_all


def _code(response) -> str:
    return response.json()["error"]["code"]


def test_put_creates_product_and_answers_the_recomputed_price(alice) -> None:
    response = product_put(alice, "SHOE-1")
    assert response.status_code == 201
    body = response.json()
    assert body["sku"] == "SHOE-1"
    assert body["base_price"] == "100.00"
    assert body["price"]["price"] == "100.00"
    assert body["price"]["version"] == 1
    assert product_put(alice, "SHOE-1", base_price="120").json()["price"]["price"] == "120.00"


def test_unchanged_put_writes_no_audit_row_and_no_new_version(alice) -> None:
    product_put(alice, "SHOE-1")
    audits = AuditEntry.objects.filter(entity="product").count()
    response = product_put(alice, "SHOE-1")
    assert response.status_code == 200
    assert response.json()["price"]["version"] == 1
    assert AuditEntry.objects.filter(entity="product").count() == audits


def test_product_change_is_audited_with_before_and_after(alice) -> None:
    product_put(alice, "SHOE-1")
    product_put(alice, "SHOE-1", base_price="90.00")
    entry = AuditEntry.objects.filter(entity="product", entity_id="SHOE-1", action="update").get()
    assert entry.before["base_price"] == "100.00"
    assert entry.after["base_price"] == "90.00"
    assert entry.actor.startswith("key:sk_")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"base_price": "19.999"}, "invalid_decimal"),
        ({"base_price": 19.99}, "invalid_decimal"),
        ({"base_price": "abc"}, "invalid_decimal"),
        ({"base_price": "-1.00"}, "negative_amount"),
        ({"cost": "-0.01"}, "negative_amount"),
        ({"currency": "XYZ"}, "unknown_currency"),
        ({"currency": "JPY", "base_price": "100.5", "cost": None, "list_price": None}, "invalid_decimal"),
        ({"cost": "140.00", "list_price": "130.00"}, "floor_above_ceiling"),
        ({"name": ""}, "validation_failed"),
        ({"inventory": -3}, "validation_failed"),
        ({"colour": "red"}, "validation_failed"),
    ],
)
def test_bad_product_is_refused_with_a_clear_400_and_nothing_written(alice, fields, code) -> None:
    response = product_put(alice, "SHOE-1", **fields)
    assert response.status_code == 400, response.content
    assert _code(response) == code
    assert response.json()["error"]["details"]
    assert not Product.objects.exists()
    assert not PriceSnapshot.objects.exists()


def test_bad_sku_in_url_is_400(alice) -> None:
    response = product_put(alice, "bad$sku")
    assert response.status_code == 400
    assert _code(response) == "invalid_sku"
    too_long = product_put(alice, "A" * 65)
    assert _code(too_long) == "invalid_sku"


@pytest.mark.parametrize(("currency", "amount"), [("JPY", "1999"), ("USD", "19.99"), ("BHD", "1.234")])
def test_amounts_carry_the_currency_exponent(alice, currency, amount) -> None:
    response = product_put(alice, "X-1", currency=currency, base_price=amount, cost=None, list_price=None)
    assert response.status_code == 201, response.content
    assert response.json()["base_price"] == amount
    assert response.json()["price"]["price"] == amount


def test_json_body_is_required(alice) -> None:
    response = alice.client().put("/v1/products/X-1", "name=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert _code(response) == "unsupported_media_type"
    broken = alice.client().put("/v1/products/X-1", "{not json", content_type="application/json")
    assert broken.status_code == 400
    assert _code(broken) == "invalid_json"


def test_publishable_key_cannot_write_products(alice, anon_client) -> None:
    response = anon_client.put(f"/v1/products/X-1?key={alice.publishable_key}", PRODUCT, format="json")
    assert response.status_code == 403
    assert _code(response) == "secret_key_required"


def _rows(count: int, **override) -> list[dict]:
    return [{**PRODUCT, "sku": f"BULK-{n:05d}", **override} for n in range(count)]


def test_bulk_upsert_is_all_or_nothing_with_a_report_per_row(alice) -> None:
    rows = _rows(5)
    rows[1]["base_price"] = "1.001"
    rows[3]["currency"] = "ZZZ"
    rows[4]["sku"] = "no spaces"
    response = alice.client().post("/v1/products/bulk", {"products": rows}, format="json")
    assert response.status_code == 400
    body = response.json()["error"]
    assert body["code"] == "validation_failed"
    assert [(d["index"], d["code"]) for d in body["details"]] == [
        (1, "invalid_decimal"),
        (3, "unknown_currency"),
        (4, "invalid_sku"),
    ]
    assert not Product.objects.exists()


def test_bulk_upsert_creates_products_and_a_repricing_job(alice) -> None:
    response = alice.client().post("/v1/products/bulk", {"products": _rows(450)}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (450, 0, 0)
    assert body["job"]["shards_total"] == 3
    shards_run_all()
    job = alice.client().get(body["job"]["url"]).json()
    assert (job["status"], job["shards_done"], job["skus_changed"]) == ("done", 3, 450)
    again = alice.client().post("/v1/products/bulk", {"products": _rows(450)}, format="json").json()
    assert (again["unchanged"], again["job"]) == (450, None)


def test_bulk_refuses_duplicates_and_more_than_10000_rows(alice) -> None:
    rows = _rows(2)
    rows[1]["sku"] = rows[0]["sku"]
    assert alice.client().post("/v1/products/bulk", {"products": rows}, format="json").status_code == 400
    response = alice.client().post("/v1/products/bulk", {"products": _rows(10_001)}, format="json")
    assert response.status_code == 400
    assert not Product.objects.exists()
    assert not RepricingJob.objects.exists()


@override_settings(MAX_BODY_BYTES=1000)
def test_body_over_the_route_limit_is_413(alice) -> None:
    response = product_put(alice, "SHOE-1", name="x" * 2000)
    assert response.status_code == 413
    assert _code(response) == "payload_too_large"
    bulk = alice.client().post("/v1/products/bulk", {"products": _rows(20)}, format="json")
    assert bulk.status_code == 200


def test_product_list_is_paginated_by_sku(alice) -> None:
    alice.client().post("/v1/products/bulk", {"products": _rows(5)}, format="json")
    page = alice.client().get("/v1/products?page_size=2").json()
    assert [p["sku"] for p in page["results"]] == ["BULK-00000", "BULK-00001"]
    second = alice.client().get(page["next"]).json()
    assert [p["sku"] for p in second["results"]] == ["BULK-00002", "BULK-00003"]


@pytest.mark.parametrize("path", ["/v1/products?cursor=not-ours", "/v1/products/SKU-1/price-history?cursor=not-ours"])
def test_a_cursor_the_api_did_not_give_is_a_400_naming_it(alice, path: str) -> None:
    alice.client().put("/v1/products/SKU-1", PRODUCT, format="json")
    response = alice.client().get(path)
    assert response.status_code == 400
    assert _code(response) == "validation_failed"
    assert response.json()["error"]["details"][0]["field"] == "cursor"


def _forged(query: bytes) -> str:
    return base64.b64encode(query).decode()


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"/v1/products?cursor={_forged(b'p=%00')}", "invalid_characters"),
        (f"/v1/products/SKU-1/price-history?cursor={_forged(b'p=%00')}", "invalid_characters"),
        (f"/v1/products/SKU-1/price-history?cursor={_forged(b'p=not-a-time')}", "validation_failed"),
        (f"/v1/products/SKU-1/price-history?cursor={_forged(b'o=5&p=2025-02-30T00:00:00')}", "validation_failed"),
    ],
)
def test_a_forged_cursor_the_database_cannot_read_is_a_400(alice, path: str, code: str) -> None:
    """A cursor is base64 the client can write: its position must be one the ordering field can be compared with."""
    alice.client().put("/v1/products/SKU-1", PRODUCT, format="json")
    client = alice.client()
    client.raise_request_exception = False

    response = client.get(path)

    assert response.status_code == 400
    assert _code(response) == code
    assert response.json()["error"]["details"][0]["field"] == "cursor"


def test_bulk_accepts_10000_products_in_one_call(alice) -> None:
    response = alice.client().post("/v1/products/bulk", {"products": _rows(10_000)}, format="json")
    assert response.status_code == 200, response.content[:500]
    assert response.json()["created"] == 10_000
    assert response.json()["job"]["shards_total"] == 50
    assert Product.objects.filter(retailer=alice.retailer).count() == 10_000
