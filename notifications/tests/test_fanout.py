"""Fan-out: one row per (event, endpoint), created once, held for disabled endpoints."""

from __future__ import annotations

import pytest
from django.db import transaction

from notifications.models import Delivery, WebhookEvent
from notifications.services.endpoints import endpoint_update
from notifications.services.fanout import DELIVERY_SEND_TASK, event_fan_out
from notifications.tests.factories import endpoint_make
from workers.models import OutboxMessage
from workers.outbox import subscribers_for

pytestmark = pytest.mark.django_db


def _event(tenant, topic: str = "prices.changed") -> dict:
    return {"topic": topic, "key": "job-7", "version": 3, "retailer_id": tenant.retailer.pk, "cause": "product_write"}


def test_a_redelivered_event_creates_nothing_twice(alice) -> None:
    endpoint_make(alice, "http://127.0.0.1:9/a")
    endpoint_make(alice, "http://127.0.0.1:9/b")

    first = event_fan_out(event=_event(alice))
    second = event_fan_out(event=_event(alice))

    assert (first, second) == (2, 0)
    assert WebhookEvent.objects.count() == 1
    assert Delivery.objects.count() == 2
    assert OutboxMessage.objects.filter(task_name=DELIVERY_SEND_TASK).count() == 2


def test_only_subscribed_endpoints_of_the_event_s_retailer_get_a_delivery(alice, bob) -> None:
    endpoint_make(alice, "http://127.0.0.1:9/prices")
    endpoint_make(alice, "http://127.0.0.1:9/backups", ["backup.completed"])
    endpoint_make(bob, "http://127.0.0.1:9/prices")

    event_fan_out(event=_event(alice))

    assert list(Delivery.objects.values_list("endpoint__url", flat=True)) == ["http://127.0.0.1:9/prices"]
    assert Delivery.objects.get().endpoint.retailer == alice.retailer


def test_a_disabled_endpoint_s_events_are_kept_as_held(alice) -> None:
    endpoint, _ = endpoint_make(alice, "http://127.0.0.1:9/a")
    endpoint_update(endpoint=endpoint, changes={"enabled": False})

    event_fan_out(event=_event(alice))

    assert Delivery.objects.get().state == Delivery.State.HELD
    assert not OutboxMessage.objects.filter(task_name=DELIVERY_SEND_TASK).exists()


def test_the_dispatcher_finds_the_subscriber_for_every_announced_topic() -> None:
    for topic in ("prices.changed", "backup.completed", "backup.failed", "endpoint.disabled"):
        assert subscribers_for(topic), topic


def test_fan_out_writes_its_outbox_rows_in_the_caller_s_transaction(alice) -> None:
    endpoint_make(alice, "http://127.0.0.1:9/a")

    def dispatch_that_fails() -> None:
        with transaction.atomic():
            event_fan_out(event=_event(alice))
            raise RuntimeError("the dispatch rolls back")

    with pytest.raises(RuntimeError):
        dispatch_that_fails()

    assert not Delivery.objects.exists()
    assert not OutboxMessage.objects.filter(task_name=DELIVERY_SEND_TASK).exists()
