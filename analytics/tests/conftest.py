"""Fixtures of the analytics tests: posting batches through the API, waiting for the ingest queue,
and the browser tests' Chromium, shopper and live storefront."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from django.test import Client
from playwright.sync_api import Browser, sync_playwright

from analytics.tests.browser_support import (
    Shopper,
    Storefront,
    shopper_watch,
    storefront_start,
)
from analytics.tests.probes import CHROME_UA, held_messages, ingest_drained
from app.tests.browser import CHROMIUM, CHROMIUM_ARGS
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

        try:
            wait_until(settled, timeout=timeout, interval=0.05)
        except AssertionError as timeout_error:
            raise AssertionError(f"ingest not drained: {held_messages(broker_redis)}") from timeout_error

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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are still synchronous.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def shopper(browser: Browser) -> Iterator[Shopper]:
    """A page in a fresh en-US, UTC browser context (its own localStorage)."""
    context = browser.new_context(locale="en-US", timezone_id="UTC")
    yield shopper_watch(context.new_page())
    context.close()


@pytest.fixture
def storefront(settings, tmp_path, celery_worker) -> Iterator[Storefront]:
    """The demo page on another origin than the live API (gunicorn), with a real ingest worker."""
    shop = storefront_start(settings, tmp_path, celery_worker)
    yield shop
    shop.stop()
