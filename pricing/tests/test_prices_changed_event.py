"""``prices.changed``: one event per cause with old and new prices, in pages of at most 500."""

from __future__ import annotations

import pytest

from pricing.services import products_bulk_upsert, rule_create
from pricing.services.announce import PAGE_SIZE
from pricing.services.refresh import snapshots_refresh
from pricing.tests.conftest import PRODUCT, shards_run_all
from workers.models import OutboxMessage

pytestmark = pytest.mark.django_db

INVENTORY_UP = {"name": "Scarce", "params": {"scarce_at_or_below": 1000, "scarcity_raise_percent": "10"}}


def _events() -> list[dict]:
    rows = OutboxMessage.objects.filter(kwargs__topic="prices.changed").order_by("id")
    return [row.kwargs["payload"] for row in rows]


def test_one_refresh_of_many_skus_is_one_cause_in_pages_of_500(alice) -> None:
    rows = [{**PRODUCT, "sku": f"P-{n:05d}", "base_price": "10.00"} for n in range(1001)]
    products_bulk_upsert(retailer_id=alice.retailer.id, rows=rows, actor="test")
    OutboxMessage.objects.filter(kwargs__topic="prices.changed").delete()

    snapshots_refresh(retailer_id=alice.retailer.id, skus=[row["sku"] for row in rows], reason="first pricing")

    pages = _events()
    assert [len(page["skus"]) for page in pages] == [PAGE_SIZE, PAGE_SIZE, 1]
    assert {page["cause_id"] for page in pages} == {pages[0]["cause_id"]}
    assert [(page["page"], page["pages"]) for page in pages] == [(1, 3), (2, 3), (3, 3)]
    assert pages[0]["skus"][0] == {
        "sku": "P-00000",
        "old_price": None,
        "new_price": "10.00",
        "currency": "USD",
        "version": 1,
    }
    assert not OutboxMessage.objects.filter(kwargs__topic="price.changed").exists()


def test_a_repricing_shard_announces_old_and_new_prices_once(alice) -> None:
    rows = [{**PRODUCT, "sku": f"R-{n}", "base_price": "10.00", "inventory": 5} for n in range(3)]
    products_bulk_upsert(retailer_id=alice.retailer.id, rows=rows, actor="test")
    shards_run_all()
    before = len(_events())

    rule_create(retailer_id=alice.retailer.id, kind="inventory", values=INVENTORY_UP, actor="test")
    shards_run_all()

    (event,) = _events()[before:]
    assert [(s["sku"], s["old_price"], s["new_price"]) for s in event["skus"]] == [
        ("R-0", "10.00", "11.00"),
        ("R-1", "10.00", "11.00"),
        ("R-2", "10.00", "11.00"),
    ]
    assert event["retailer_id"] == alice.retailer.id


def test_a_refresh_that_changes_nothing_announces_nothing(alice) -> None:
    products_bulk_upsert(retailer_id=alice.retailer.id, rows=[{**PRODUCT, "sku": "N-1"}], actor="test")
    shards_run_all()
    before = len(_events())

    snapshots_refresh(retailer_id=alice.retailer.id, skus=["N-1"], reason="nothing moved")

    assert len(_events()) == before
