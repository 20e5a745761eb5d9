"""No key of one retailer reads or changes anything of another: 404, never 403, never a leak."""

from __future__ import annotations

import pytest

from pricing.models import Product, Rule
from pricing.services import rule_create
from pricing.tests.conftest import prices_get, product_put

INVENTORY = {"name": "Scarce", "params": {"scarce_at_or_below": 3, "scarcity_raise_percent": "10"}}


@pytest.fixture
def alice_catalog(alice):
    product_put(alice, "ALICE-1", base_price="10.00")
    return rule_create(retailer_id=alice.retailer.id, kind="inventory", values=INVENTORY, actor="test")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/products/ALICE-1", None),
        ("get", "/v1/products/ALICE-1/price-history", None),
        ("get", "/v1/products/ALICE-1/lowest-price", None),
        ("put", "/v1/competitor-prices/ALICE-1", {"competitor": "x", "price": "1.00"}),
        ("put", "/v1/demand/ALICE-1", {"signal": "2.0000"}),
        ("get", "/v1/rules/{rule}", None),
        ("patch", "/v1/rules/{rule}", {"enabled": False}),
        ("delete", "/v1/rules/{rule}", None),
        ("get", "/v1/repricing-jobs/{job}", None),
    ],
)
def test_bobs_key_finds_nothing_of_alices(alice_catalog, bob, method, path, body) -> None:
    url = path.format(rule=alice_catalog.rule.id, job=alice_catalog.job.id)
    response = getattr(bob.client(), method)(url, body, format="json")
    assert response.status_code == 404, (url, response.content)
    assert Rule.objects.get(pk=alice_catalog.rule.id).enabled


def test_bob_lists_none_of_alices_products_or_rules(alice_catalog, bob) -> None:
    assert bob.client().get("/v1/products").json()["results"] == []
    assert bob.client().get("/v1/rules").json() == []


def test_bobs_publishable_key_does_not_price_alices_skus(alice_catalog, bob) -> None:
    assert prices_get(bob, "/ALICE-1").status_code == 404
    assert prices_get(bob, "?skus=ALICE-1").json() == {"prices": [], "missing": ["ALICE-1"]}


def test_bob_writing_the_same_sku_makes_his_own_product(alice_catalog, bob) -> None:
    assert product_put(bob, "ALICE-1", base_price="99.00").status_code == 201
    assert Product.objects.get(retailer=alice_catalog.rule.retailer, sku="ALICE-1").base_price == 10
    assert prices_get(bob, "/ALICE-1").json()["price"] == "99.00"
