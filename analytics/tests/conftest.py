"""Fixtures of the analytics tests: posting batches through the API, waiting for the ingest queue."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from django.test import Client

from analytics.tests.probes import CHROME_UA, ingest_drained
from workers.testing import wait_until


@pytest.fixture
def wait_drained(broker_redis: redis.Redis) -> Callable[..., None]:
    """Wait until no batch is waiting or unacknowledged, for a whole second (a message taken by
    BRPOP is briefly in neither place before kombu records it as unacknowledged)."""

    def wait(timeout: float = 60.0) -> None:
        quiet_since: list[float] = []

        def settled() -> bool:
            if not ingest_drained(broker_redis):
                quiet_since.clear()
                return False
            quiet_since.append(time.monotonic())
            return quiet_since[-1] - quiet_since[0] >= 1.0

        wait_until(settled, timeout=timeout, interval=0.05, message="ingest not drained")

    return wait


@pytest.fixture
def post_batch() -> Callable[[str, bytes], int]:
    """POST a body to /v1/events with a publishable key, as a browser's beacon does; returns the status."""
    client = Client()

    def post(key: str, body: bytes) -> int:
        response = client.generic(
            "POST", f"/v1/events?key={key}", body, content_type="text/plain;charset=UTF-8", HTTP_USER_AGENT=CHROME_UA
        )
        return response.status_code

    return post
