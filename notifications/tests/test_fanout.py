"""Fan-out: one row per (event, endpoint), created once, held for disabled endpoints; a drain
per endpoint published to the webhooks queue once the fan-out commits, never before."""

from __future__ import annotations

import pytest
from django.db import transaction

from notifications.models import Delivery, WebhookEvent
from notifications.services.endpoints import endpoint_update
from notifications.services.fanout import ENDPOINT_DRAIN_TASK, event_fan_out, events_fan_out
from notifications.tests.factories import endpoint_make
from workers.broker import queue_stats
from workers.models import OutboxMessage
from workers.outbox import dispatch_queue_for, subscribers_for
from workers.routing import Queue

pytestmark = pytest.mark.django_db


def _event(tenant, topic: str = "prices.changed") -> dict:
    return {"topic": topic, "key": "job-7", "version": 3, "retailer_id": tenant.retailer.pk, "cause": "product_write"}


def _webhooks_queued() -> int:
    (stats,) = queue_stats((Queue.WEBHOOKS.value,))
    return stats.depth


def test_a_redelivered_event_creates_and_publishes_nothing_twice(
    alice, broker_redis, django_capture_on_commit_callbacks
) -> None:
    endpoint_make(alice, "http://127.0.0.1:9/a")
    endpoint_make(alice, "http://127.0.0.1:9/b")

    with django_capture_on_commit_callbacks(execute=True):
        first = event_fan_out(event=_event(alice))
    with django_capture_on_commit_callbacks(execute=True):
        second = event_fan_out(event=_event(alice))

    assert (first, second) == (2, 0)
    assert WebhookEvent.objects.count() == 1
    assert Delivery.objects.count() == 2
    assert _webhooks_queued() == 2  # a drain for each endpoint
    assert None not in set(Delivery.objects.values_list("dispatched_at", flat=True))  # the sweep waits for them
    assert not OutboxMessage.objects.filter(task_name=ENDPOINT_DRAIN_TASK).exists()  # no second relay hop


def test_a_batch_of_events_makes_every_delivery_once_and_one_drain_per_endpoint(
    alice, bob, broker_redis, django_capture_on_commit_callbacks
) -> None:
    endpoint_make(alice, "http://127.0.0.1:9/a")
    endpoint_make(alice, "http://127.0.0.1:9/b")
    endpoint_make(bob, "http://127.0.0.1:9/c")
    events = [{**_event(tenant), "key": f"{tenant.retailer.pk}:job-{n}"} for n in range(30) for tenant in (alice, bob)]

    with django_capture_on_commit_callbacks(execute=True):
        created = events_fan_out(events=events)
    with django_capture_on_commit_callbacks(execute=True):
        again = events_fan_out(events=events[::-1])  # redelivered, in another order

    assert (created, again) == (90, 0)
    assert WebhookEvent.objects.count() == 60
    pairs = list(Delivery.objects.values_list("event__retailer_id", "endpoint__retailer_id"))
    assert len(set(Delivery.objects.values_list("event_id", "endpoint_id"))) == len(pairs) == 90
    assert all(event_retailer == endpoint_retailer for event_retailer, endpoint_retailer in pairs)
    assert _webhooks_queued() == 3


def test_only_subscribed_endpoints_of_the_event_s_retailer_get_a_delivery(alice, bob) -> None:
    endpoint_make(alice, "http://127.0.0.1:9/prices")
    endpoint_make(alice, "http://127.0.0.1:9/backups", ["backup.completed"])
    endpoint_make(bob, "http://127.0.0.1:9/prices")

    event_fan_out(event=_event(alice))

    assert list(Delivery.objects.values_list("endpoint__url", flat=True)) == ["http://127.0.0.1:9/prices"]
    assert Delivery.objects.get().endpoint.retailer == alice.retailer


def test_a_disabled_endpoint_s_events_are_kept_as_held(alice, broker_redis, django_capture_on_commit_callbacks) -> None:
    endpoint, _ = endpoint_make(alice, "http://127.0.0.1:9/a")
    endpoint_update(endpoint=endpoint, changes={"enabled": False})

    with django_capture_on_commit_callbacks(execute=True):
        event_fan_out(event=_event(alice))

    assert Delivery.objects.get().state == Delivery.State.HELD
    assert _webhooks_queued() == 0


def test_the_dispatcher_finds_the_subscriber_for_every_announced_topic_on_the_notify_queue() -> None:
    for topic in ("prices.changed", "backup.completed", "backup.failed", "endpoint.disabled"):
        assert subscribers_for(topic), topic
        assert dispatch_queue_for(topic) == Queue.WEBHOOKS, topic  # not behind pricing on default


def test_a_fan_out_rolled_back_with_its_caller_publishes_nothing(
    alice, broker_redis, django_capture_on_commit_callbacks
) -> None:
    endpoint_make(alice, "http://127.0.0.1:9/a")

    def dispatch_that_fails() -> None:
        with transaction.atomic():
            event_fan_out(event=_event(alice))
            raise RuntimeError("the dispatch rolls back")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        dispatch_that_fails()

    assert not Delivery.objects.exists()
    assert _webhooks_queued() == 0
