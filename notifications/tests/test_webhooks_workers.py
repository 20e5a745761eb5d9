"""The whole path on real processes: outbox row → relay → dispatcher (fan-out) → relay →
webhooks worker → signed POST to a real local endpoint → attempt row. Verified with the
``standardwebhooks`` package at real time. Production's timeouts throughout: a killed worker's
delivery waits out its 30 s lease (``WEBHOOK_LEASE_SECONDS``), then beat's 2 s sweep hands it on."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import transaction
from standardwebhooks.webhooks import Webhook

from notifications.models import Delivery
from notifications.tests.conftest import Reply
from notifications.tests.factories import endpoint_make
from workers.outbox import outbox_announce
from workers.testing import start_celery_beat, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("faults"), pytest.mark.timeout(180)]


def _announce(tenant, key: str, topic: str = "prices.changed") -> None:
    with transaction.atomic():
        outbox_announce(
            topic=topic,
            payload={"retailer_id": tenant.retailer.pk, "cause": "repricing_job", "skus": []},
            key=key,
            version=1,
        )


def test_one_event_reaches_each_subscribed_endpoint_once_and_a_failing_one_blocks_nobody(
    celery_worker, outbox_relay, endpoint_server, alice, bob
) -> None:
    healthy, failing, other_type, bobs = (endpoint_server() for _ in range(4))
    failing.default = Reply(status=500)
    _, secret = endpoint_make(alice, healthy.url())
    endpoint_make(alice, failing.url())
    endpoint_make(alice, other_type.url(), ["backup.completed"])
    endpoint_make(bob, bobs.url())
    celery_worker(["default", "webhooks"], concurrency=2)
    outbox_relay()

    _announce(alice, "job-1")

    wait_until(lambda: healthy.received and failing.received, timeout=30, message="both endpoints called")
    (request,) = healthy.received
    assert Webhook(secret).verify(request.body, request.headers)["data"]["cause"] == "repricing_job"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 30
    assert other_type.received == []
    assert bobs.received == []
    wait_until(lambda: Delivery.objects.filter(state=Delivery.State.SUCCEEDED).count() == 1, timeout=10)
    wait_until(lambda: Delivery.objects.get(endpoint__url=failing.url()).attempt_rows.exists(), timeout=10)
    failed = Delivery.objects.get(endpoint__url=failing.url())
    assert failed.state == Delivery.State.PENDING
    assert failed.attempts == 1


def test_kill_9_of_the_webhooks_worker_mid_delivery_loses_nothing_and_resends_the_same_id(
    celery_worker, outbox_relay, endpoint_server, alice
) -> None:
    server = endpoint_server()
    server.replies.append(Reply(delay=10.0))  # the first send hangs until the worker is dead
    _, secret = endpoint_make(alice, server.url())
    celery_worker(["default"])
    victim = celery_worker(["webhooks"])
    outbox_relay()

    _announce(alice, "job-kill")
    wait_until(lambda: server.received, timeout=30, message="the first send started")
    victim.kill_group()
    killed_at = time.monotonic()
    celery_worker(["webhooks"])
    beat = start_celery_beat()  # the 2 s sweep
    try:
        wait_until(
            lambda: Delivery.objects.filter(state=Delivery.State.SUCCEEDED).exists(),
            timeout=settings.WEBHOOK_LEASE_SECONDS + 30,
            interval=0.5,
            message="the delivery was sent again and succeeded",
        )
    finally:
        beat.stop()
    print(f"[webhooks kill -9] re-sent and succeeded {time.monotonic() - killed_at:.1f} s after the kill")  # noqa: T201
    first, *again = server.received
    assert again, "a re-send reached the endpoint"
    assert {request.headers["webhook-id"] for request in server.received} == {first.headers["webhook-id"]}
    Webhook(secret).verify(again[-1].body, again[-1].headers)
    delivery = Delivery.objects.get()
    assert delivery.attempts >= 2
