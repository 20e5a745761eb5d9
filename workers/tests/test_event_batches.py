"""Events travel in batches: the relay packs the events it publishes for the first time into
one dispatch message per queue, the dispatcher runs each once, and a topic whose subscriber
fails is rolled back alone and sent again one event at a time."""

from __future__ import annotations

import base64

import orjson
import pytest
from django.db import transaction
from django.utils import timezone

from workers.models import OutboxMessage
from workers.outbox import EVENT_DISPATCH_TASK, EVENTS_DISPATCH_TASK, outbox_announce, outbox_subscriber
from workers.relay import relay_batch
from workers.routing import Queue
from workers.services import outbox_events_dispatch
from workers.testing import wait_until
from workers.tests import fault_tasks

pytestmark = pytest.mark.django_db(transaction=True)

BROKEN = "workers_tests.broken_subscriber"


@outbox_subscriber(BROKEN)
def _broken(event: dict[str, object]) -> None:
    if event.get("poison"):
        raise ValueError("this subscriber cannot take that event")


def _announce(count: int, *, topic: str = fault_tasks.THING_CHANGED, prefix: str = "thing", **payload: object) -> None:
    with transaction.atomic():
        for n in range(count):
            outbox_announce(topic=topic, payload=dict(payload), key=f"{prefix}-{n}", version=1)


def _queued(broker_redis, queue: str) -> list[tuple[str, dict]]:
    """(task name, kwargs) of every message waiting in ``queue``."""
    messages = [orjson.loads(raw) for raw in broker_redis.lrange(queue, 0, -1)]
    return [(message["headers"]["task"], _kwargs(message)) for message in messages]


def _kwargs(message: dict) -> dict:
    _, kwargs, _ = orjson.loads(base64.b64decode(message["body"]))
    return kwargs


def test_the_relay_packs_first_published_events_per_queue_up_to_the_batch_size(broker_redis, settings) -> None:
    settings.OUTBOX_DISPATCH_BATCH = 4
    outbox_subscriber("workers_tests.batched_elsewhere", queue=Queue.WEBHOOKS)(lambda event: None)
    _announce(9)
    _announce(1, topic="workers_tests.batched_elsewhere", prefix="other")

    assert relay_batch() == 10

    default = _queued(broker_redis, Queue.DEFAULT.value)
    sizes = sorted(len(kwargs["event_keys"]) for task, kwargs in default if task == EVENTS_DISPATCH_TASK)
    assert sizes == [4, 4]
    assert [task for task, _ in default].count(EVENT_DISPATCH_TASK) == 1  # the ninth, alone
    packed = [key for task, kwargs in default if task == EVENTS_DISPATCH_TASK for key in kwargs["event_keys"]]
    assert len(set(packed)) == 8
    assert [task for task, _ in _queued(broker_redis, Queue.WEBHOOKS.value)] == [EVENT_DISPATCH_TASK]


def test_an_event_published_again_goes_alone_with_its_own_outbox_id(broker_redis) -> None:
    _announce(3)
    assert relay_batch() == 3
    broker_redis.delete(Queue.DEFAULT.value)  # the batch was taken and lost
    OutboxMessage.objects.update(next_publish_at=timezone.now())

    assert relay_batch() == 3

    republished = [orjson.loads(raw)["headers"] for raw in broker_redis.lrange(Queue.DEFAULT.value, 0, -1)]
    assert {headers["task"] for headers in republished} == {EVENT_DISPATCH_TASK}
    assert {headers["outbox_id"] for headers in republished} == set(OutboxMessage.objects.values_list("pk", flat=True))


def test_a_batch_runs_each_event_once_and_a_redelivered_or_overlapping_batch_runs_none(effects) -> None:
    _announce(5)
    keys = list(OutboxMessage.objects.order_by("pk").values_list("idempotency_key", flat=True))

    first = outbox_events_dispatch(event_keys=keys[:3])
    overlapping = outbox_events_dispatch(event_keys=keys[1:])
    again = outbox_events_dispatch(event_keys=keys)

    assert (first, overlapping, again) == (3, 2, 0)
    assert effects.applied() == {f"thing-{n}@1": 1 for n in range(5)}
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {OutboxMessage.Status.DONE}


def test_a_failing_topic_is_rolled_back_alone_and_its_events_are_sent_again_one_by_one(
    effects, broker_redis, django_capture_on_commit_callbacks
) -> None:
    _announce(2)
    _announce(1, topic=BROKEN, prefix="fine")
    _announce(1, topic=BROKEN, prefix="bad", poison=True)
    OutboxMessage.objects.update(status=OutboxMessage.Status.SENT, publish_attempts=1)
    keys = list(OutboxMessage.objects.order_by("pk").values_list("idempotency_key", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        done = outbox_events_dispatch(event_keys=keys)

    assert done == 2
    assert effects.applied() == {"thing-0@1": 1, "thing-1@1": 1}
    statuses = dict(OutboxMessage.objects.values_list("kwargs__topic", "status").distinct())
    assert statuses == {fault_tasks.THING_CHANGED: OutboxMessage.Status.DONE, BROKEN: OutboxMessage.Status.SENT}
    singles = [orjson.loads(raw)["headers"] for raw in broker_redis.lrange(Queue.DEFAULT.value, 0, -1)]
    assert [headers["task"] for headers in singles] == [EVENT_DISPATCH_TASK] * 2
    broken_ids = set(OutboxMessage.objects.filter(kwargs__topic=BROKEN).values_list("pk", flat=True))
    assert {headers["outbox_id"] for headers in singles} == broken_ids  # each with its own retries and dead letter


def test_a_burst_of_events_is_dispatched_by_a_real_worker_once_each(celery_worker, effects) -> None:
    celery_worker(["default"], include=[fault_tasks.MODULE])
    _announce(250)

    assert relay_batch() == 250

    wait_until(lambda: not OutboxMessage.objects.exclude(status=OutboxMessage.Status.DONE).exists(), timeout=30)
    assert effects.applied() == {f"thing-{n}@1": 1 for n in range(250)}
