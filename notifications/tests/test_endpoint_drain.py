"""An endpoint's drain sends its due deliveries slot after slot, each once; a slot counts as
one request in flight against the concurrency limit; an answer that says the endpoint is in
trouble ends the slot and hands the rest to the next drain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import Delivery, DeliveryAttempt
from notifications.services import delivery as delivery_service
from notifications.services.delivery import deliveries_claim, delivery_attempt, endpoint_drain
from notifications.tests.conftest import Reply
from notifications.tests.factories import endpoint_make, event_announce
from workers.broker import queue_stats
from workers.routing import Queue

pytestmark = pytest.mark.django_db


def _drains_queued() -> int:
    (stats,) = queue_stats((Queue.WEBHOOKS.value,))
    return stats.depth


def test_a_drain_sends_every_due_delivery_of_the_endpoint_once_over_several_slots(
    monkeypatch, alice, endpoint_server
) -> None:
    monkeypatch.setattr(delivery_service, "CLAIM_BATCH", 3)
    server = endpoint_server()
    endpoint, _ = endpoint_make(alice, server.url())
    deliveries = [event_announce(alice)[0] for _ in range(8)]

    made = endpoint_drain(endpoint_id=endpoint.pk)

    assert made == 8
    assert sorted(request.headers["webhook-id"] for request in server.received) == sorted(
        delivery.event.public_id for delivery in deliveries
    )
    assert set(Delivery.objects.values_list("state", "attempts", "slot")) == {(Delivery.State.SUCCEEDED, 1, None)}
    assert sorted(DeliveryAttempt.objects.values_list("delivery_id", "number", "outcome")) == [
        (delivery.pk, 1, "succeeded") for delivery in sorted(deliveries, key=lambda row: row.pk)
    ]
    assert endpoint_drain(endpoint_id=endpoint.pk) == 0  # a duplicate message, later: nothing


def test_the_drain_leaves_deliveries_that_are_not_due_yet(alice, endpoint_server) -> None:
    server = endpoint_server()
    endpoint, _ = endpoint_make(alice, server.url())
    first, later = event_announce(alice)[0], event_announce(alice)[0]
    Delivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))

    assert endpoint_drain(endpoint_id=endpoint.pk) == 1
    assert Delivery.objects.get(pk=first.pk).state == Delivery.State.SUCCEEDED
    assert Delivery.objects.get(pk=later.pk).state == Delivery.State.PENDING


def test_a_failed_attempt_ends_the_slot_puts_the_rest_back_and_hands_them_to_the_next_drain(
    alice, endpoint_server, broker_redis
) -> None:
    server = endpoint_server()
    server.replies.append(Reply(status=500))
    endpoint, _ = endpoint_make(alice, server.url())
    first, second, third = (event_announce(alice)[0] for _ in range(3))

    assert endpoint_drain(endpoint_id=endpoint.pk) == 1

    assert len(server.received) == 1
    rows = {row.pk: row for row in Delivery.objects.all()}
    assert rows[first.pk].state == Delivery.State.PENDING
    assert rows[first.pk].next_attempt_at > timezone.now()  # on the retry schedule
    for untouched in (second, third):
        assert (rows[untouched.pk].state, rows[untouched.pk].attempts) == (Delivery.State.PENDING, 0)
        assert rows[untouched.pk].slot is None
    assert _drains_queued() == 1  # the next drain, not a wait for the sweep


def test_a_permanent_answer_fails_that_delivery_and_the_slot_goes_on(alice, endpoint_server) -> None:
    server = endpoint_server()
    server.replies.append(Reply(status=400))
    endpoint, _ = endpoint_make(alice, server.url())
    rejected, accepted = event_announce(alice)[0], event_announce(alice)[0]

    assert endpoint_drain(endpoint_id=endpoint.pk) == 2

    assert Delivery.objects.get(pk=rejected.pk).state == Delivery.State.FAILED
    assert Delivery.objects.get(pk=accepted.pk).state == Delivery.State.SUCCEEDED


def test_a_slot_counts_once_against_the_limit_however_many_deliveries_it_holds(
    settings, alice, endpoint_server
) -> None:
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 2
    server = endpoint_server()
    endpoint, _ = endpoint_make(alice, server.url())
    for _ in range(2 * delivery_service.CLAIM_BATCH + 1):
        event_announce(alice)
    first = deliveries_claim(endpoint_id=endpoint.pk)
    second = deliveries_claim(endpoint_id=endpoint.pk)
    assert first is not None  # its POSTs are under way
    assert second is not None

    assert len(first.deliveries) == len(second.deliveries) == delivery_service.CLAIM_BATCH
    assert not {row.pk for row in first.deliveries} & {row.pk for row in second.deliveries}
    assert deliveries_claim(endpoint_id=endpoint.pk) is None  # both slots in flight
    assert endpoint_drain(endpoint_id=endpoint.pk) == 0
    assert server.received == []


def test_a_delivery_of_a_busy_endpoint_stays_due_for_the_slot_holder(settings, alice, endpoint_server) -> None:
    settings.WEBHOOK_ENDPOINT_CONCURRENCY = 1
    server = endpoint_server()
    endpoint, _ = endpoint_make(alice, server.url())
    event_announce(alice)
    slot = deliveries_claim(endpoint_id=endpoint.pk)
    assert slot is not None  # its POST is under way
    waiting = event_announce(alice)[0]

    assert delivery_attempt(delivery_id=waiting.pk) is None
    waiting.refresh_from_db()
    assert waiting.state == Delivery.State.PENDING
    assert waiting.next_attempt_at <= timezone.now()  # due: the slot holder's drain takes it next
    assert server.received == []

    delivery_service.slot_record(slot, delivery_service.slot_send(slot, deadline=0.0))
    assert endpoint_drain(endpoint_id=endpoint.pk) == 1
    assert Delivery.objects.get(pk=waiting.pk).state == Delivery.State.SUCCEEDED


def test_a_slot_whose_lease_expired_and_was_claimed_again_leaves_the_rows_to_the_new_claim(
    alice, endpoint_server
) -> None:
    server = endpoint_server()
    endpoint, _ = endpoint_make(alice, server.url())
    event_announce(alice)
    stale = deliveries_claim(endpoint_id=endpoint.pk)
    assert stale is not None
    Delivery.objects.update(lease_until=timezone.now() - timedelta(seconds=1))  # its worker died mid-POST
    fresh = deliveries_claim(endpoint_id=endpoint.pk)
    assert fresh is not None
    assert fresh.deliveries[0].attempts == 2

    delivery_service.slot_record(stale, delivery_service.slot_send(stale, deadline=0.0))  # the old run records late

    row = Delivery.objects.get()
    assert (row.state, row.slot) == (Delivery.State.SENDING, fresh.token)
    delivery_service.slot_record(fresh, delivery_service.slot_send(fresh, deadline=0.0))
    row.refresh_from_db()
    assert row.state == Delivery.State.SUCCEEDED
    assert len({request.headers["webhook-id"] for request in server.received}) == 1  # re-sent as the same message
