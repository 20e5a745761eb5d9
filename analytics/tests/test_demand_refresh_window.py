"""A retailer's batches ask for one demand refresh per window, scheduled for the window's end."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson

from analytics.services import demand_refresh_claim
from analytics.services.demand import REFRESH_WINDOW_PREFIX
from analytics.tasks import REFRESH_AFTER_WINDOW_SECONDS, events_ingest_batch
from analytics.tests.factories import batch_body, event_json

REFRESH_TASK = "analytics.demand_refresh_marked"


def _ingest(retailer_id: int, body: bytes, key: str) -> None:
    events_ingest_batch.run(
        retailer_id=retailer_id, batch=body.decode(), received_at=datetime.now(UTC).isoformat(), idempotency_key=key
    )


def _scheduled_refreshes(broker_redis) -> list[tuple[dict, dict]]:
    messages = [orjson.loads(raw) for raw in broker_redis.lrange("ingest", 0, -1)]
    return [
        (message["headers"], orjson.loads(base64.b64decode(message["body"]))[1])
        for message in messages
        if message["headers"]["task"] == REFRESH_TASK
    ]


def test_one_window_per_retailer_until_it_closes(alice, bob, broker_redis):
    first = demand_refresh_claim(retailer_id=alice.retailer.id)

    assert first
    assert demand_refresh_claim(retailer_id=alice.retailer.id) is None
    assert demand_refresh_claim(retailer_id=bob.retailer.id) not in (None, first)
    broker_redis.delete(f"{REFRESH_WINDOW_PREFIX}:{alice.retailer.id}")  # the window ends
    assert demand_refresh_claim(retailer_id=alice.retailer.id) not in (None, first)


def test_batches_in_one_window_schedule_one_refresh_at_its_end(alice, broker_redis, settings, transactional_db):
    settings.ANALYTICS_DEMAND_REFRESH_DELAY_SECONDS = 30  # every batch below lands in the first window
    retailer_id = alice.retailer.id

    for number in range(3):
        _ingest(retailer_id, batch_body([event_json(sku=f"W{number}")]), key=f"window-{number}")
    before = datetime.now(UTC)

    [(headers, kwargs)] = _scheduled_refreshes(broker_redis)
    assert kwargs["retailer_id"] == retailer_id
    assert kwargs["idempotency_key"].startswith(f"demand-refresh:{retailer_id}:")
    delay = (datetime.fromisoformat(headers["eta"]) - before).total_seconds()
    assert 29 < delay <= 30 + REFRESH_AFTER_WINDOW_SECONDS


def test_a_batch_without_skus_asks_for_no_refresh(alice, broker_redis, transactional_db):
    _ingest(alice.retailer.id, batch_body([event_json(type="page_view")]), key="pages-only")

    assert _scheduled_refreshes(broker_redis) == []
