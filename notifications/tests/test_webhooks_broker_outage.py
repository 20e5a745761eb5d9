"""A broker outage mid-delivery, on real processes: the broker (a private Redis with its
append-only file, as the README asks of a broker) is stopped while webhooks are being
delivered and events are still being announced, and started again. Every event reaches the
endpoint, once.

What the outage breaks, and what brings it back: the relay cannot publish the events
announced meanwhile (it backs off, and publishes them on its return); a drain's publish of
the next drain fails (the deliveries stay due, their ``dispatched_at`` stamps are cleared, and
beat's 2 s sweep publishes their drain once the broker is back); the worker loses its broker
connection with messages unacknowledged (dead-consumer recovery gives them back, and they find
their delivery claimed or done). All with production's timeouts and sweeps. The delivery row's
conditional claim is what keeps every copy from sending twice.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.db import transaction

from notifications.envelope import event_public_id
from notifications.models import Delivery
from notifications.tests.conftest import Reply
from notifications.tests.factories import endpoint_make
from workers.outbox import outbox_announce
from workers.testing import private_redis_server, start_celery_beat, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("faults"), pytest.mark.timeout(240)]

EVENTS_BEFORE = 150
EVENTS_DURING = 50
OUTAGE_SECONDS = 4.0


def _announce(tenant, keys: list[str]) -> list[str]:
    with transaction.atomic():
        for key in keys:
            outbox_announce(
                topic="prices.changed", payload={"retailer_id": tenant.retailer.pk, "skus": []}, key=key, version=1
            )
    return [event_public_id(topic="prices.changed", key=key, version=1) for key in keys]


def test_a_broker_stopped_and_restarted_mid_delivery_loses_and_duplicates_no_webhook(
    celery_worker, outbox_relay, endpoint_server, alice, settings
) -> None:
    server = endpoint_server()
    server.default = Reply(delay=0.02)  # deliveries stay in flight long enough to be cut
    endpoint_make(alice, server.url())
    with private_redis_server(persistent=True) as broker:
        settings.CELERY_BROKER_URL = broker.url  # the child processes' broker
        celery_worker(["default", "webhooks"], concurrency=2)
        beat = start_celery_beat()  # the 2 s sweep
        try:
            relay = outbox_relay()
            expected = _announce(alice, [f"before-{number}" for number in range(EVENTS_BEFORE)])
            wait_until(lambda: len(server.received) >= EVENTS_BEFORE // 4, timeout=60, interval=0.01)

            broker.shutdown()
            received_at_stop = len(server.received)
            expected += _announce(alice, [f"during-{number}" for number in range(EVENTS_DURING)])
            wait_until(lambda: relay.events("outbox_relay_unavailable"), timeout=20)
            time.sleep(OUTAGE_SECONDS)
            broker.start()

            # Sooner than a stamp's expiry (WEBHOOK_REDISPATCH_SECONDS, 60 s): a refused publish
            # cleared the stamps of the deliveries it was for, and the first sweep took them.
            wait_until(
                lambda: Delivery.objects.filter(state=Delivery.State.SUCCEEDED).count() == len(expected),
                timeout=settings.WEBHOOK_REDISPATCH_SECONDS - 15,
                interval=0.2,
                message="every delivery succeeded after the outage, before a stamp could expire",
            )
            time.sleep(3.0)  # a sweep or two more: room for a duplicate, if one were coming
        finally:
            beat.stop()

    received = Counter(request.headers["webhook-id"] for request in server.received)
    lost = sum(1 for message_id in expected if received[message_id] == 0)
    duplicated = sum(count - 1 for count in received.values() if count > 1)
    print(  # noqa: T201
        f"[webhooks, broker outage] {len(expected)} events, {received_at_stop} received before the stop: "
        f"lost {lost}, duplicated {duplicated}"
    )
    assert 0 < received_at_stop < EVENTS_BEFORE  # the outage struck mid-delivery
    assert (lost, duplicated) == (0, 0)
    assert set(received) == set(expected)
    assert relay.events("outbox_relay_recovered")
