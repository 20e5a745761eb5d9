"""No key of one retailer reads or changes anything of another: 404, never 403, never a leak."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.tenancy.models import AuditEntry
from pricing.models import CompetitorPrice, DemandSignal, Product, RepricingJob, Rule
from pricing.services import rule_create
from pricing.tests.conftest import prices_get, product_put

INVENTORY = {"name": "Scarce", "params": {"scarce_at_or_below": 3, "scarcity_raise_percent": "10"}}


@pytest.fixture
def alice_catalog(alice):
    """ALICE-1 with a competitor price and a demand signal, and one rule, all Alice's."""
    product_put(alice, "ALICE-1", base_price="10.00")
    client = alice.client()
    competitor = client.put("/v1/competitor-prices/ALICE-1", {"competitor": "x", "price": "9.00"}, format="json")
    demand = client.put("/v1/demand/ALICE-1", {"signal": "1.5000"}, format="json")
    assert (competitor.status_code, demand.status_code) == (200, 200)
    return rule_create(retailer_id=alice.retailer.id, kind="inventory", values=INVENTORY, actor="test")


def stored() -> dict[str, list[tuple[Any, ...]]]:
    """Every row a write by Bob could add or change, with the values that matter."""
    return {
        "products": list(Product.objects.order_by("pk").values_list("retailer_id", "sku", "base_price", "active")),
        "competitor_prices": list(
            CompetitorPrice.objects.order_by("pk").values_list("retailer_id", "sku", "competitor", "price")
        ),
        "demand_signals": list(DemandSignal.objects.order_by("pk").values_list("retailer_id", "sku", "signal")),
        "rules": list(Rule.objects.order_by("pk").values_list("retailer_id", "name", "enabled", "params")),
        "jobs": list(RepricingJob.objects.order_by("pk").values_list("pk")),
        "audit": list(AuditEntry.objects.order_by("pk").values_list("pk")),
    }


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
    before = stored()
    response = getattr(bob.client(), method)(url, body, format="json")
    assert response.status_code == 404, (url, response.content)
    assert stored() == before  # Alice's rows as they were, and no row for ALICE-1 under Bob
    assert CompetitorPrice.objects.get(sku="ALICE-1").price == Decimal("9.00")
    assert DemandSignal.objects.get(sku="ALICE-1").signal == Decimal("1.5000")


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
