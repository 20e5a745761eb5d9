"""The SKU rule, matched in full wherever a SKU arrives, and written once (pricing/skus.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from django.test import Client

from analytics.jsmin import MINIFIED
from analytics.tests.factories import batch_body, event_json
from conftest import Tenant
from pricing.models import Product
from pricing.skus import SKU

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = {"name": "Trail shoe", "base_price": "10.00"}


def test_a_sku_ending_in_a_newline_is_not_created(alice: Tenant) -> None:
    response = alice.client().put("/v1/products/ABC%0A", PRODUCT, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_sku"
    assert response.json()["error"]["details"][0]["field"] == "sku"
    assert not Product.objects.exists()


@pytest.mark.parametrize(
    "url",
    ["/v1/products/ABC%0A", "/v1/products/ABC%0A/price-history", "/v1/demand/ABC%0A", "/v1/analytics/skus/ABC%0A"],
)
def test_every_sku_path_parameter_follows_the_rule(alice: Tenant, url: str) -> None:
    response = alice.client().get(url)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_sku"


@pytest.mark.parametrize("query", ["/v1/prices/ABC%0A?", "/v1/prices?skus=ABC%0A&", "/v1/prices?skus=A,,B&"])
def test_price_lookups_follow_the_rule(alice: Tenant, query: str) -> None:
    response = Client().get(f"{query}key={alice.publishable_key}", HTTP_ORIGIN=alice.origin)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_sku"


def test_bulk_rows_and_rule_skus_follow_the_rule(alice: Tenant) -> None:
    client = alice.client()
    bulk = client.post("/v1/products/bulk", {"products": [{**PRODUCT, "sku": "ABC\n"}]}, format="json")
    rule = client.post(
        "/v1/rules",
        {
            "kind": "inventory",
            "name": "x",
            "skus": ["ABC\n"],
            "params": {"scarce_at_or_below": 5, "scarcity_raise_percent": "5"},
        },
        format="json",
    )

    assert bulk.status_code == rule.status_code == 400
    assert bulk.json()["error"]["details"][0]["code"] == "invalid_sku"
    assert rule.json()["error"]["code"] == "invalid_sku"


@pytest.mark.django_db
def test_an_event_for_a_sku_ending_in_a_newline_is_refused(alice: Tenant, broker_redis) -> None:
    body = batch_body([event_json(type="product_view", sku="ABC\n")])
    response = Client().post(
        f"/v1/events?key={alice.publishable_key}", body, content_type="application/json", HTTP_ORIGIN=alice.origin
    )

    assert response.status_code == 400
    assert broker_redis.llen("ingest") == 0


def test_the_contract_documents_the_rule_on_every_sku() -> None:
    contract = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    patterns = [
        parameter["schema"].get("pattern")
        for operations in contract["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "sku"
    ]
    event_sku = contract["components"]["schemas"]["EventRequest"]["properties"]["sku"]["pattern"]

    assert len(patterns) >= 7
    assert set(patterns) == {SKU.ecmascript} == {event_sku}


def test_the_js_insert_carries_the_rule_from_its_build() -> None:
    assert f"new RegExp({json.dumps(SKU.ecmascript)})" in MINIFIED.read_text()


def test_the_rule_is_written_once() -> None:
    """Generated copies (the contract, the minified insert) are built from pricing/skus.py."""
    body = re.escape(SKU.body)
    generated = {ROOT / "docs" / "openapi.yaml", MINIFIED}
    copies = [
        str(path.relative_to(ROOT))
        for pattern in ("*.py", "*.js", "*.yaml", "*.html")
        for path in ROOT.glob(f"[!.]*/**/{pattern}")
        if path not in generated and re.search(body, path.read_text(errors="replace"))
    ]
    assert copies == ["pricing/skus.py"]
