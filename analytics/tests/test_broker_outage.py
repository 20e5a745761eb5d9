"""Broker down: the API answers 503 with Retry-After at once, nothing is counted; the resend counts once."""

from __future__ import annotations

import signal
import socket
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
from workers.testing import ManagedProcess, wait_until


class StandaloneBroker:
    """A broker Redis of this test only, so it can be stopped without touching anyone else's."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: ManagedProcess | None = None

    def start(self) -> None:
        self.process = ManagedProcess(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            env={"PATH": "/usr/bin:/bin:/usr/local/bin"},
            name="broker-redis",
        )
        wait_until(self.answers, timeout=10, message="broker redis did not start")

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill(signal.SIGKILL)
        self.process.wait(timeout=5)
        self.process.stop()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture
def standalone_broker(settings, transactional_db) -> Iterator[StandaloneBroker]:
    broker = StandaloneBroker()
    broker.start()
    settings.CELERY_BROKER_URL = broker.url  # the web publish and every worker started from now on use it
    publish.web_publish_reset()
    yield broker
    publish.web_publish_reset()
    if broker.process is not None:
        broker.process.stop()


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

    standalone_broker.start()
    assert standalone_broker.client().llen("ingest") == 0  # no batch was accepted during the outage
    assert RawEvent.objects.count() == 0
    resent = post(alice.publishable_key, body)
    assert resent.status_code == 202
    wait_until(lambda: counted_total(alice.retailer.id) == 30, timeout=60, message="resend not counted")
    wait_until(lambda: standalone_broker.client().hlen("unacked") == 0, timeout=30)
    assert worker.is_running()
    assert RawEvent.objects.count() == 30
    assert counted_total(alice.retailer.id) == 30
