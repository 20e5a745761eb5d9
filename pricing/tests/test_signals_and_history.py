"""Demand signals (the analytics contract), competitor prices, price history and the 30-day low."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing.models import PriceHistory, PriceSnapshot
from pricing.services import demand_signal_set, demand_signals_set, rule_create
from pricing.tests.conftest import daily_limit_off, product_put, shards_run_all
from workers.models import OutboxMessage

DEMAND = {"name": "Demand", "params": {"sensitivity": "0.5", "max_multiplier": "1.5"}}
COMPETITOR = {"name": "Match", "params": {"mode": "match", "max_decrease_percent": "20"}}


@pytest.fixture
def priced(alice):
    product_put(alice, "A-1", base_price="100.00")
    rule_create(retailer_id=alice.retailer.id, kind="demand", values=DEMAND, actor="test")
    shards_run_all()
    return alice


def test_demand_signal_reprices_and_reports_a_change_once(priced) -> None:
    rid = priced.retailer.id
    assert demand_signal_set(retailer_id=rid, sku="A-1", signal=Decimal("1.2000"), actor="analytics") is True
    snapshot = PriceSnapshot.objects.get(sku="A-1")
    assert snapshot.effective_price == Decimal("110.00")
    assert demand_signal_set(retailer_id=rid, sku="A-1", signal=Decimal("1.2000"), actor="analytics") is False
    event = OutboxMessage.objects.filter(task_name="workers.event_dispatch").order_by("-id").first()
    assert event.kwargs["topic"] == "prices.changed"
    assert event.kwargs["payload"]["retailer_id"] == rid
    assert event.kwargs["payload"]["skus"] == [
        {"sku": "A-1", "old_price": "100.00", "new_price": "110.00", "currency": "USD", "version": snapshot.version}
    ]


def test_bulk_demand_signals_return_the_skus_whose_price_moved(priced) -> None:
    daily_limit_off(priced)  # the rule's whole effect, beyond the default 20 % a day
    product_put(priced, "B-2", base_price="50.00")
    changed = demand_signals_set(
        retailer_id=priced.retailer.id,
        signals={"A-1": Decimal("1.0000"), "B-2": Decimal("2.0000"), "NOT-YET": Decimal("3")},
        actor="analytics",
    )
    assert changed == ["B-2"]
    assert PriceSnapshot.objects.get(sku="B-2").effective_price == Decimal("75.00")
    product_put(priced, "NOT-YET", base_price="10.00")
    assert PriceSnapshot.objects.get(sku="NOT-YET").effective_price == Decimal("15.00")


def test_demand_api_sets_the_same_signal(priced) -> None:
    response = priced.client().put("/v1/demand/A-1", {"signal": "1.4000"}, format="json")
    assert response.json() == {"sku": "A-1", "signal": "1.4000", "price_changed": True}
    for bad, code in [
        ("-1", "negative_amount"),
        ("1.00001", "invalid_decimal"),
        ("x", "invalid_decimal"),
        (1.5, "invalid_decimal"),
    ]:
        refused = priced.client().put("/v1/demand/A-1", {"signal": bad}, format="json")
        assert (refused.status_code, refused.json()["error"]["code"]) == (400, code)
    assert priced.client().put("/v1/demand/NOPE", {"signal": "1"}, format="json").status_code == 404


def test_competitor_price_reprices_the_sku(alice) -> None:
    product_put(alice, "A-1", base_price="100.00")
    rule_create(retailer_id=alice.retailer.id, kind="competitor", values=COMPETITOR, actor="test")
    shards_run_all()
    response = alice.client().put("/v1/competitor-prices/A-1", {"competitor": "rival", "price": "89.50"}, format="json")
    assert response.status_code == 200
    assert response.json()["price"] == "89.50"
    bad = alice.client().put("/v1/competitor-prices/A-1", {"competitor": "rival", "price": "89.505"}, format="json")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_decimal")


def test_price_history_lists_every_change_newest_first(priced) -> None:
    demand_signal_set(retailer_id=priced.retailer.id, sku="A-1", signal=Decimal("1.2"), actor="t")
    demand_signal_set(retailer_id=priced.retailer.id, sku="A-1", signal=Decimal("0.8"), actor="t")
    rows = priced.client().get("/v1/products/A-1/price-history").json()["results"]
    assert [row["price"] for row in rows] == ["90.00", "110.00", "100.00"]
    assert [row["version"] for row in rows] == sorted((row["version"] for row in rows), reverse=True)


def test_policy_change_refused_when_a_floor_would_pass_a_ceiling(alice) -> None:
    product_put(alice, "A-1", base_price="100.00", cost="50.00", list_price="110.00")
    refused = alice.client().put("/v1/pricing/policy", {"min_margin_percent": "150"}, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "floor_above_ceiling")
    accepted = alice.client().put(
        "/v1/pricing/policy",
        {"min_margin_percent": "10", "rounding_step": "1", "rounding_ending": "0.99"},
        format="json",
    )
    assert accepted.status_code == 202
    shards_run_all()
    assert PriceSnapshot.objects.get(sku="A-1").effective_price == Decimal("99.99")
    assert alice.client().get("/v1/pricing/policy").json()["rounding_ending"] == "0.9900"
    assert (
        product_put(alice, "B-1", cost="105.00", list_price="110.00").json()["error"]["code"] == "floor_above_ceiling"
    )


def test_pause_records_the_visible_price_change_in_history(priced) -> None:
    demand_signal_set(retailer_id=priced.retailer.id, sku="A-1", signal=Decimal("1.2"), actor="t")
    priced.client().post("/v1/pricing/pause")
    shards_run_all()
    assert PriceHistory.objects.filter(sku="A-1").order_by("-version").first().price == Decimal("100.00")
    assert priced.client().post("/v1/pricing/pause").json()["job"] is None
    priced.client().post("/v1/pricing/resume")
    shards_run_all()
    assert PriceHistory.objects.filter(sku="A-1").order_by("-version").first().price == Decimal("110.00")
