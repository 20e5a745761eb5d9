"""On real workers: a slow endpoint does not delay a healthy one, and an email redelivered
to the email queue is sent once."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from notifications.models import Delivery, EmailNotification
from notifications.services.email import notification_enqueue
from notifications.services.sweep import deliveries_sweep
from notifications.tasks import email_drain
from notifications.tests.conftest import Reply
from notifications.tests.factories import endpoint_make, event_announce
from workers.testing import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("faults"), pytest.mark.timeout(180)]


def test_a_slow_endpoint_does_not_delay_a_healthy_one(celery_worker, outbox_relay, endpoint_server, alice) -> None:
    slow, healthy = endpoint_server(), endpoint_server()
    slow.default = Reply(delay=4.0)
    endpoint_make(alice, slow.url())
    endpoint_make(alice, healthy.url())
    celery_worker(["webhooks"], concurrency=3, extra_env={"WEBHOOK_ENDPOINT_CONCURRENCY": "1"})
    started = time.monotonic()
    for _ in range(5):
        event_announce(alice)
    outbox_relay()

    def healthy_all_received() -> bool:
        deliveries_sweep()  # what beat runs every 2 s: hands postponed deliveries back to the workers
        return len(healthy.received) == 5

    wait_until(healthy_all_received, timeout=20, interval=0.5, message="the healthy endpoint got all five")
    healthy_done = time.monotonic() - started

    assert healthy_done < 8.0, f"healthy deliveries took {healthy_done:.1f} s behind a 4 s endpoint"
    assert len(slow.received) <= 2  # one request in flight at a time: the others wait, unsent
    # Waiting in their rows (pending) or behind the one in flight in its slot (sending): a drain
    # that ran while the events were being announced may hold several of them in its slot.
    assert Delivery.objects.filter(endpoint__url=slow.url()).exclude(state=Delivery.State.SUCCEEDED).count() >= 3


def test_an_email_drained_many_times_over_on_the_email_queue_is_sent_once(celery_worker, smtp_server, alice) -> None:
    celery_worker(["email"], concurrency=2, extra_env={"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_server.port)})
    with transaction.atomic():
        row = notification_enqueue(
            retailer_id=alice.retailer.pk,
            to_email="ops@alice.example",
            kind="backup.completed",
            context={},
            dedup_key="worker-test",
        )  # its drain is published once this commits
    for copy in range(3):  # more drains, as a redelivery or another burst's would be
        email_drain.enqueue(idempotency_key=f"extra:{copy}")

    wait_until(lambda: EmailNotification.objects.get(pk=row.pk).state == "sent", timeout=30)
    time.sleep(1.0)  # room for a duplicate to arrive, if one were coming
    assert smtp_server.message_ids() == [f"<{row.pk}@storefabric>"]
