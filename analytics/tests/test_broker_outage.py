"""Broker down: the API answers 503 with Retry-After at once, nothing is counted; the resend counts once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from django.test import Client

from analytics.models import RawEvent
from analytics.tests.factories import batch_body, event_json
from analytics.tests.probes import CHROME_UA, counted_total
from workers import publish
from workers.testing import PrivateRedis, private_redis_server, wait_until


@pytest.fixture
def standalone_broker(settings, transactional_db) -> Iterator[PrivateRedis]:
    """A broker of this test only, so it can be stopped without touching anyone else's."""
    with private_redis_server() as broker:
        settings.CELERY_BROKER_URL = broker.url  # the web publish and every worker started from now on use it
        publish.web_publish_reset()
        yield broker
    publish.web_publish_reset()


def broker_of(server: PrivateRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def post(key: str, body: bytes):
    return Client().generic(
        "POST", f"/v1/events?key={key}", body, content_type="text/plain;charset=UTF-8", HTTP_USER_AGENT=CHROME_UA
    )


def timed_post(key: str, body: bytes):
    started = time.monotonic()
    response = post(key, body)
    return response, time.monotonic() - started


@pytest.mark.faults
@pytest.mark.xdist_group("faults")
def test_broker_down_is_a_fast_503_and_the_resend_counts_once(alice, standalone_broker, celery_worker):
    body = batch_body([event_json(sku=f"B{i}", ts=datetime.now(UTC)) for i in range(30)])
    worker = celery_worker(["ingest"], concurrency=1)

    standalone_broker.process.kill(signal.SIGSTOP)  # hung: accepts TCP, never answers
    hung, hung_seconds = timed_post(alice.publishable_key, body)
    standalone_broker.process.kill(signal.SIGCONT)
    standalone_broker.kill()  # gone: connection refused
    gone, gone_seconds = timed_post(alice.publishable_key, body)

    for response, seconds in ((hung, hung_seconds), (gone, gone_seconds)):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "broker_unavailable"
        assert int(response["Retry-After"]) > 0
        assert seconds < 1.5

    standalone_broker.restart()
    assert broker_of(standalone_broker).llen("ingest") == 0  # no batch was accepted during the outage
    assert RawEvent.objects.count() == 0
    resent = post(alice.publishable_key, body)
    assert resent.status_code == 202
    wait_until(lambda: counted_total(alice.retailer.id) == 30, timeout=60, message="resend not counted")
    wait_until(lambda: broker_of(standalone_broker).hlen("unacked") == 0, timeout=30)
    assert worker.is_running()
    assert RawEvent.objects.count() == 30
    assert counted_total(alice.retailer.id) == 30
