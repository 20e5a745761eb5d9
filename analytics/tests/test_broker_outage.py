"""Broker down: the API answers 503 with Retry-After at once, nothing is counted; the resend counts once."""

from __future__ import annotations

import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from django.test import Client

import workers.broker
from analytics.models import RawEvent
from analytics.tests.factories import batch_body, event_json
from analytics.tests.probes import CHROME_UA, counted_total
from workers import publish
from workers.journal import journal_sweep
from workers.models import DeadLetter
from workers.testing import (
    PrivateRedis,
    ProcessTimeoutError,
    WebServer,
    private_redis_server,
    start_procfile_worker,
    wait_until,
)


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


OUTAGES = 5
OUTAGE_SECONDS = 4.0  # the crash struck at the first failed read; a longer outage adds only waiting
LOAD_SECONDS_BETWEEN = 3.0
BATCH_EVENTS = 10


class EventLoad:
    """Shoppers' beacons through the real web process, one thread; remembers every event
    answered 202 (a 503 may still have reached the broker: the resend counts it once)."""

    def __init__(self, web_url: str, key: str) -> None:
        self.url = f"{web_url}/v1/events?key={key}"
        self.accepted: list[str] = []
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        events = self._batch()
        while not self._stop.is_set():
            request = urllib.request.Request(  # noqa: S310 - loopback
                self.url, data=batch_body(events), headers={"Content-Type": "text/plain", "User-Agent": CHROME_UA}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 202:
                self.accepted.extend(event["id"] for event in events)
                events = self._batch()
            time.sleep(0.02)  # under the key's rate limit

    @staticmethod
    def _batch() -> list[dict[str, object]]:
        """A new batch; after a 503 the same one is sent again, as the JS insert does."""
        return [event_json(sku=f"S{number % 7}") for number in range(BATCH_EVENTS)]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.mark.faults
@pytest.mark.xdist_group("faults")
@pytest.mark.timeout(300)
def test_the_bulk_worker_survives_five_broker_stops_under_load_and_counts_every_accepted_event(
    alice, settings, transactional_db, monkeypatch
):
    """The Procfile's ``worker_bulk`` (its own options; a fixed pool of two, so that every
    pool process must be the same at the end) consumes while a persistent broker is stopped
    and started five times under event load through gunicorn. Celery 5.7 + kombu 5.7 used to
    exit the worker at the first stop (``workers.kombu_redis_reconnect``)."""
    with private_redis_server(persistent=True) as broker:
        settings.CELERY_BROKER_URL = broker.url
        publish.web_publish_reset()
        monkeypatch.setattr(workers.broker, "_client", None)  # this process's sweep, on this broker
        web = WebServer(extra_env={"RATE_LIMIT_PER_CLIENT_PER_MINUTE": "0"})  # one load generator, one client
        worker = start_procfile_worker("worker_bulk", {"BULK_MAX": "2", "BULK_MIN": "2"})
        try:
            children = worker.child_pids()
            client = broker_of(broker)
            load = EventLoad(web.url, alice.publishable_key)
            try:
                for _ in range(OUTAGES):
                    time.sleep(LOAD_SECONDS_BETWEEN)
                    # the stop strikes while the worker holds messages (the crash needed that)
                    wait_until(lambda: client.hlen("unacked") > 0, timeout=20, interval=0.005)
                    broker.shutdown()
                    time.sleep(OUTAGE_SECONDS)
                    broker.start()
                    assert worker.is_running(), worker.output()[-3000:]
                time.sleep(LOAD_SECONDS_BETWEEN)  # consumed after the last start too
            finally:
                load.stop()
            accepted = len(load.accepted)

            def state() -> str:
                raw = RawEvent.objects.filter(event_id__in=load.accepted).count()
                queues = {key.decode(): client.type(key).decode() for key in client.keys("*")}
                trouble = [e for e in worker.events() if e.get("level") in ("warning", "error", "critical")]
                letters = list(DeadLetter.objects.values_list("task_name", "exception"))
                return (
                    f"accepted {accepted}, stored {raw}, counted {counted_total(alice.retailer.id)}, "
                    f"broker {queues}, dead letters {letters}, worker warnings and errors {trouble[-40:]}"
                )

            swept = 0
            try:
                wait_until(lambda: counted_total(alice.retailer.id) >= accepted, timeout=60, interval=0.5)
            except ProcessTimeoutError:
                # A batch the broker handed to a BRPOP as it shut down is in no queue and no
                # unacknowledged record: the publish journal's sweep (beat, every minute, with the
                # production minimum age, long reached by now) is its way back, as in production.
                swept = journal_sweep().republished
            try:
                wait_until(lambda: counted_total(alice.retailer.id) >= accepted, timeout=30, interval=0.5)
            except ProcessTimeoutError as error:
                raise AssertionError(state()) from error
            time.sleep(2)  # a late duplicate would land now

            answers = f"answers {load.statuses}, accepted {accepted}, swept {swept}"
            print(f"\n[broker stopped {OUTAGES}x under load] {answers}")  # noqa: T201
            assert worker.is_running(), worker.output()[-3000:]
            assert worker.child_pids() == children
            assert len(worker.events("broker_reconnect_restored")) >= 1  # held messages came back at once
            assert load.statuses.get(503, 0) > 0  # the stops struck while batches arrived
            assert set(load.statuses) <= {202, 503}
            assert len(set(load.accepted)) == accepted > 0
            assert RawEvent.objects.filter(event_id__in=load.accepted).count() == accepted
            assert counted_total(alice.retailer.id) == accepted
        finally:
            worker.stop()
            web.process.stop()
    publish.web_publish_reset()
