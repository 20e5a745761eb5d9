"""The demand loop end to end: events through the API and a real worker move a price exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.test import Client

from analytics.services import demand_refresh
from analytics.tests.factories import batch_body, event_json, event_row, ingest_as_it_happened
from analytics.tests.probes import wait_ingested, wait_refreshed
from pricing.models import DemandSignal, PriceSnapshot
from pricing.services import policy_update, product_upsert, rule_create
from workers.models import OutboxMessage
from workers.outbox import EVENT_DISPATCH_TASK

SKU = "LOOP-1"


def price_changes(retailer_id: int) -> list[dict]:
    """The announced changes of the retailer's prices, one per SKU change, oldest first."""
    rows = OutboxMessage.objects.filter(task_name=EVENT_DISPATCH_TASK, kwargs__topic="prices.changed").order_by("id")
    return [
        {"version": sku["version"], "payload": {"price": sku["new_price"], "sku": sku["sku"]}}
        for row in rows
        if row.kwargs["payload"]["retailer_id"] == retailer_id
        for sku in row.kwargs["payload"]["skus"]
    ]


def test_scripted_events_reprice_the_sku_through_its_demand_signal(alice, celery_worker, post_batch):
    retailer_id = alice.retailer.id
    rule_create(
        retailer_id=retailer_id,
        kind="demand",
        values={"name": "Demand", "params": {"sensitivity": "0.5", "min_multiplier": "0.8", "max_multiplier": "1.5"}},
        actor="test",
    )
    product_upsert(
        retailer_id=retailer_id, sku=SKU, data={"name": "Loop", "currency": "USD", "base_price": "80.00"}, actor="test"
    )
    assert PriceSnapshot.objects.get(retailer_id=retailer_id, sku=SKU).effective_price == Decimal("80.00")
    policy_update(retailer_id=retailer_id, data={"max_daily_change_percent": None}, actor="test")  # no daily cap
    now = datetime.now(UTC)
    # History, stored as it was received: first seen 7 days ago (so the trailing window counts all
    # its 168 hours), then 335 views three days ago: 336 in all, a trailing mean of 2 per hour.
    history = [event_row(sku=SKU, ts=now - timedelta(days=7))]
    history += [event_row(sku=SKU, ts=now - timedelta(days=3, seconds=i)) for i in range(335)]
    ingest_as_it_happened(retailer_id, history)
    demand_refresh(retailer_id=retailer_id, skus=[SKU])
    assert DemandSignal.objects.get(retailer_id=retailer_id, sku=SKU).signal == Decimal("0.0000")
    # No activity in the last hour: signal 0, multiplier 1 - 0.5 = 0.5, held at the minimum 0.8.
    assert PriceSnapshot.objects.get(retailer_id=retailer_id, sku=SKU).effective_price == Decimal("64.00")
    # The last hour, through the API and a real worker: 3 views (weight 1) and a page view (no SKU):
    # signal 3 / 2 = 1.5000, multiplier 1 + 0.5 x (1.5 - 1) = 1.25, price 80.00 x 1.25 = 100.00.
    recent = [event_json(sku=SKU, ts=now - timedelta(minutes=minutes)) for minutes in (1, 5, 10)]
    recent += [event_json(type="page_view", ts=now)]
    worker = celery_worker(["ingest"], concurrency=2)

    assert post_batch(alice.publishable_key, batch_body(recent)) == 202
    wait_ingested(worker, batches=1)
    wait_refreshed(worker, refreshes=1)

    assert DemandSignal.objects.get(retailer_id=retailer_id, sku=SKU).signal == Decimal("1.5000")
    snapshot = PriceSnapshot.objects.get(retailer_id=retailer_id, sku=SKU)
    assert snapshot.effective_price == Decimal("100.00")
    changes = price_changes(retailer_id)
    assert [(c["payload"]["price"], c["version"]) for c in changes] == [
        ("80.00", 1),
        ("64.00", 2),
        ("100.00", 3),
    ]
    assert changes[-1]["version"] == snapshot.version
    served = Client().get(f"/v1/prices?skus={SKU}&key={alice.publishable_key}").json()
    assert served["prices"][0]["price"] == "100.00"
