"""A retailer's server sending events with its secret key is no bot: real curl, real gunicorn, real
ingest worker, every event counted; a crawler on the publishable key is told it was ignored."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import orjson
import pytest

from analytics.tests.factories import batch_body, event_json
from analytics.tests.probes import counted_total
from workers.testing import WebServer, wait_until


@pytest.fixture
def web(transactional_db: None) -> Iterator[WebServer]:
    server = WebServer()
    yield server
    server.process.stop(graceful=False)


def curl_post(url: str, body: bytes, *headers: str) -> tuple[int, dict]:
    """POST with the curl binary and its own ``User-Agent: curl/…``; the status and the JSON body."""
    args = ["curl", "--silent", "--show-error", "--max-time", "10", "--write-out", "\n%{http_code}"]
    args += [arg for header in headers for arg in ("--header", header)]
    done = subprocess.run([*args, "--data-binary", "@-", url], input=body, capture_output=True, check=True)
    text, status = done.stdout.decode().rsplit("\n", 1)
    return int(status), orjson.loads(text)


def test_events_sent_by_curl_with_the_secret_key_are_all_counted(alice, celery_worker, web) -> None:
    celery_worker(["ingest"])
    events = [event_json(sku=f"S{n % 3}") for n in range(7)]

    status, body = curl_post(
        f"{web.url}/v1/events",
        batch_body(events),
        f"Authorization: Bearer {alice.secret_key}",
        "Content-Type: application/json",
    )

    assert (status, body) == (202, {"accepted": 7, "demand_ignored": 0})
    wait_until(lambda: counted_total(alice.retailer.id) == 7, timeout=30, message="the batch was not counted")


def test_a_crawler_on_the_publishable_key_is_answered_ignored_and_nothing_is_counted(alice, celery_worker, web) -> None:
    celery_worker(["ingest"])
    key = alice.publishable_key
    ignored = curl_post(f"{web.url}/v1/events?key={key}", batch_body([event_json()]), "Content-Type: text/plain")
    counted = curl_post(
        f"{web.url}/v1/events",
        batch_body([event_json()]),
        f"Authorization: Bearer {alice.secret_key}",
        "Content-Type: text/plain",
    )

    assert ignored == (202, {"accepted": 0, "demand_ignored": 0, "ignored": "bot"})
    assert counted == (202, {"accepted": 1, "demand_ignored": 0})
    wait_until(lambda: counted_total(alice.retailer.id) >= 1, timeout=30, message="the secret-key batch not counted")
    assert counted_total(alice.retailer.id) == 1
