"""The web publish's own Redis envelope is the one kombu writes (plus the journal mark), and a real worker runs it."""

from __future__ import annotations

import base64

import orjson

from app.request_context import bind_request_id, reset_request_id
from workers import publish
from workers.broker import queue_peek
from workers.testing import wait_until
from workers.tests import fault_tasks

# Fields that differ between any two messages: ids, the publish time, the publishing process.
PER_MESSAGE = {"id", "root_id", "sent_at", "origin", "correlation_id", "reply_to", "delivery_tag", "kwargsrepr"}


def _take(broker_redis, queue: str) -> dict:
    return orjson.loads(broker_redis.rpop(queue))


def _body(message: dict) -> list:
    return orjson.loads(base64.b64decode(message["body"]))


def _stable(fields: dict) -> dict:
    return {name: value for name, value in fields.items() if name not in PER_MESSAGE}


def test_envelope_matches_the_one_kombu_writes_field_by_field(broker_redis):
    kwargs = {"idempotency_key": "same", "sleep_ms": 0}
    publish._publish_kombu(fault_tasks.increment, kwargs)
    ours_id = publish._publish_redis(fault_tasks.increment, kwargs)

    kombus, ours = _take(broker_redis, "default"), _take(broker_redis, "default")

    assert set(ours) == set(kombus)
    assert {name: ours[name] for name in ours if name not in ("body", "headers", "properties")} == {
        name: kombus[name] for name in kombus if name not in ("body", "headers", "properties")
    }
    assert set(ours["headers"]) == set(kombus["headers"]) | {"journaled"}  # workers.journal's mark
    assert _stable(ours["headers"]) == {**_stable(kombus["headers"]), "journaled": True}
    assert set(ours["properties"]) == set(kombus["properties"])
    assert _stable(ours["properties"]) == _stable(kombus["properties"])
    assert _body(ours) == _body(kombus)
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"] == ours_id


def test_a_long_argument_is_cut_short_in_kwargsrepr_only(broker_redis):
    batch = "x" * 10_000

    publish.publish_or_unavailable(fault_tasks.increment, idempotency_key="long", retailer_id=7, sleep_ms=0)
    publish._publish_redis(fault_tasks.increment, {"idempotency_key": "long-2", "sleep_ms": 0, "note": batch})

    first, second = _take(broker_redis, "default"), _take(broker_redis, "default")
    assert first["headers"]["kwargsrepr"] == "{'retailer_id': 7, 'sleep_ms': 0, 'idempotency_key': 'long'}"
    assert "<str of 10000 characters>" in second["headers"]["kwargsrepr"]
    assert _body(second)[1]["note"] == batch


def test_the_request_id_and_publish_time_are_stamped(broker_redis):
    token = bind_request_id("req-envelope-1")
    try:
        publish.publish_or_unavailable(fault_tasks.increment, idempotency_key="stamped", sleep_ms=0)
    finally:
        reset_request_id(token)

    message = queue_peek("default")
    assert message is not None
    assert message["headers"]["request_id"] == "req-envelope-1"
    assert message["headers"]["sent_at"] > 0


def test_a_real_worker_runs_what_the_web_publish_wrote_once_each(celery_worker, effects, broker_redis):
    keys = [f"web-envelope-{number}" for number in range(20)]
    for key in keys:
        publish.publish_or_unavailable(fault_tasks.increment, idempotency_key=key, sleep_ms=0)

    worker = celery_worker(["default"], include=[fault_tasks.MODULE])

    wait_until(lambda: len(effects.applied()) == len(keys), timeout=60)
    wait_until(lambda: len(worker.events("task_succeeded")) == len(keys), timeout=10)
    assert effects.applied() == dict.fromkeys(keys, 1)
    assert {event["idempotency_key"] for event in worker.events("task_succeeded")} == set(keys)
