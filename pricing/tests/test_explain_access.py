"""``explain=1`` shows how a price was made (cost, margin floor, inventory, competitor prices):
a retailer's server with its secret key sees it, a page's publishable key never does."""

from __future__ import annotations

import orjson
import pytest

from conftest import Tenant
from pricing.tests.conftest import prices_get, product_put, shards_run_all
from pricing.tests.test_price_api import EXPERIMENT

# Snapshots reach Redis after the commit, as in production: these tests commit.
pytestmark = pytest.mark.django_db(transaction=True)

SECRET_FIGURES = ("steps", "inventory", "competitor", "95.00", "60.00", "cost", "floor")


def _priced_from_secrets(tenant: Tenant) -> None:
    """Two SKUs whose prices moved for their inventory and a competitor's price, one in an experiment."""
    product_put(tenant, "A-1", base_price="100.00", cost="60.00", inventory=1)
    product_put(tenant, "EXP-1", base_price="100.00", cost="60.00", inventory=1)
    client = tenant.client()
    for rule in (
        {"kind": "inventory", "name": "Scarce", "params": {"scarce_at_or_below": 3, "scarcity_raise_percent": "10"}},
        {"kind": "competitor", "name": "Match", "params": {"mode": "match", "max_decrease_percent": "2"}},
        EXPERIMENT,
    ):
        assert client.post("/v1/rules", rule, format="json").status_code in (201, 202)
    for sku in ("A-1", "EXP-1"):
        competitor = {"competitor": "rival", "price": "95.00"}
        assert client.put(f"/v1/competitor-prices/{sku}", competitor, format="json").status_code == 200
    shards_run_all()


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("/A-1?explain=1", {"sku", "price", "currency", "stale"}),
        ("/EXP-1?explain=1&visitor=v1", {"sku", "price", "currency", "variant", "stale"}),
        ("?skus=A-1,EXP-1&explain=1", {"prices", "missing"}),
    ],
    ids=["one", "experiment", "list"],
)
def test_a_publishable_key_asking_to_explain_gets_the_price_and_variant_only(alice, query, fields) -> None:
    _priced_from_secrets(alice)
    explained = alice.client().get(f"/v1/prices{query}").json()  # given: the secret key sees the figures
    for row in explained.get("prices", [explained]):
        steps = {step["step"]: step for step in row["steps"]}
        assert {"base", "inventory", "competitor"} <= steps.keys()
        assert steps["competitor"]["competitor_price"] == "95.0000"

    response = prices_get(alice, query)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == fields
    for row in body.get("prices", [body]):
        assert set(row) <= {"sku", "price", "currency", "variant", "stale"}
    text = orjson.dumps(body).decode()
    assert not [figure for figure in SECRET_FIGURES if figure in text]


def test_a_publishable_key_gets_no_steps_while_pricing_is_paused(alice, short_key_cache) -> None:
    _priced_from_secrets(alice)
    assert alice.client().post("/v1/pricing/pause").status_code == 200
    assert "steps" in alice.client().get("/v1/prices/A-1?explain=1").json()
    assert set(prices_get(alice, "/A-1?explain=1").json()) == {"sku", "price", "currency", "stale"}
