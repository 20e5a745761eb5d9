"""A freed endpoint slot goes to the next due delivery at once (no wait for the sweep), the
concurrency limit still holds, and a failing answer ends the drain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Delivery
from notifications.services.delivery import delivery_attempt, delivery_attempt_and_drain, delivery_claim
from notifications.tests.conftest import Reply
from notifications.tests.factories import endpoint_make, event_announce

pytestmark = pytest.mark.django_db


def test_an_attempt_drains_the_endpoint_s_other_due_deliveries_once_each(alice, endpoint_server) -> None:
    server = endpoint_server()
    endpoint_make(alice, server.url())
    deliveries = [event_announce(alice)[0] for _ in range(4)]

    made = delivery_attempt_and_drain(delivery_id=deliveries[0].pk)

    assert made == 4
    assert sorted(request.headers["webhook-id"] for request in server.received) == sorted(
        delivery.event.public_id for delivery in deliveries
    )
    assert set(Delivery.objects.values_list("state", flat=True)) == {Delivery.State.SUCCEEDED}
    assert delivery_attempt_and_drain(delivery_id=deliveries[1].pk) == 0  # its own task, later: nothing


def test_the_drain_leaves_deliveries_that_are_not_due_yet(alice, endpoint_server) -> None:
    server = endpoint_server()
    endpoint_make(alice, server.url())
    first, later = event_announce(alice)[0], event_announce(alice)[0]
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))

    assert delivery_attempt_and_drain(delivery_id=first.pk) == 1
    assert Delivery.objects.get(pk=later.pk).state == Delivery.State.PENDING


def test_a_failed_attempt_ends_the_drain(alice, endpoint_server) -> None:
    server = endpoint_server()
    server.replies.append(Reply(status=500))
    endpoint_make(alice, server.url())
    first, second = event_announce(alice)[0], event_announce(alice)[0]

    assert delivery_attempt_and_drain(delivery_id=first.pk) == 1
    assert len(server.received) == 1
    assert Delivery.objects.get(pk=second.pk).state == Delivery.State.PENDING


def test_a_delivery_of_a_busy_endpoint_stays_due_for_the_slot_holder(settings, alice, endpoint_server) -> None:
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 1
    server = endpoint_server()
    endpoint_make(alice, server.url())
    in_flight, waiting = event_announce(alice)[0], event_announce(alice)[0]
    assert delivery_claim(delivery_id=in_flight.pk) is not None  # its POST is under way

    assert delivery_attempt(delivery_id=waiting.pk) is None

    waiting.refresh_from_db()
    assert waiting.state == Delivery.State.PENDING
    assert waiting.next_attempt_at <= timezone.now()  # due: the slot holder's drain takes it next
    assert waiting.dispatched_at is None  # no task holds it: the sweep publishes it if no drain does
    assert server.received == []
