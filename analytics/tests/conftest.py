"""Fixtures of the analytics tests: posting batches through the API, waiting for the ingest queue."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from django.test import Client

from analytics.tests.probes import CHROME_UA, ingest_drained
from workers.testing import wait_until


@pytest.fixture
def wait_drained(broker_redis: redis.Redis) -> Callable[..., None]:
    """Wait until every published batch was processed and acknowledged."""

    def wait(timeout: float = 60.0) -> None:
        wait_until(lambda: ingest_drained(broker_redis), timeout=timeout, interval=0.1, message="ingest not drained")

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
