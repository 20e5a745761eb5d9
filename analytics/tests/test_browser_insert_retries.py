"""The insert's stored batches in headless Chromium: when they are resent, when dropped, how many are kept.

Each batch is answered inside the browser (``browser_routes``) so that a test
chooses the status and ``Retry-After``; the first test passes the resend on to
the live API and checks it is counted once. Waits are read on the paused page
clock: ``due`` is how many milliseconds until the insert may send a batch again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page

from analytics.models import RawEvent
from analytics.tests.browser_routes import (
    BLANK_PAGE,
    CORS,
    EVENTS,
    PRICES,
    EventPosts,
    batch_seed,
    clock_paused,
    first_then,
    fulfilled,
    passed_on,
    pump_until,
    stored_records,
)
from analytics.tests.browser_support import ALL_PRICED, PRODUCTS, LocalServer, html_page, insert_script
from analytics.tests.probes import counted_total
from workers.testing import wait_until

pytestmark = pytest.mark.browser

FIRST_TICK = 1_500  # the insert's first tick comes 0.5-1.5 s after it starts, then one every 3 s
SHOP_PAGE = """<!doctype html><html lang="en-US"><head><meta charset="utf-8">
<script src="{api}/v1/js/storefabric.js" data-key="pk_test_page" async></script></head><body>
<span data-sf-sku="A-1">€19.99</span> <span data-sf-sku="B-2">€5.00</span></body></html>"""
PRICES_BODY = (
    b'{"prices": [{"sku": "A-1", "price": "19.99", "currency": "EUR"},'
    b' {"sku": "B-2", "price": "5.00", "currency": "EUR"}]}'
)
MINUTE = 60_000
DAY = 24 * 60 * MINUTE


@dataclass
class RoutedShop:
    """A retailer page on one origin, the insert from another, its API calls answered in the browser."""

    pages: LocalServer
    api: LocalServer
    posts: EventPosts

    def url(self, path: str = "/shop") -> str:
        return self.pages.url(path)


@pytest.fixture
def routed_shop(shopper) -> Iterator[RoutedShop]:
    api = LocalServer({("GET", "/v1/js/storefabric.js"): insert_script()})
    page = SHOP_PAGE.format(api=f"http://127.0.0.1:{api.port}").encode()
    pages = LocalServer({("GET", "/shop"): html_page(page), ("GET", "/blank"): html_page(BLANK_PAGE)})
    posts = EventPosts(fulfilled(202))
    context = shopper.page.context
    context.route(PRICES, lambda route: route.fulfill(status=200, headers=CORS, body=PRICES_BODY))
    context.route(EVENTS, posts)
    yield RoutedShop(pages, api, posts)
    api.stop()
    pages.stop()


def open_and_send_first_batch(page: Page, url: str, posts: EventPosts) -> None:
    clock_paused(page)
    page.goto(url)
    page.wait_for_function(ALL_PRICED, timeout=15_000)
    page.clock.run_for(FIRST_TICK)
    pump_until(page, lambda: len(posts.sent) >= 1, message="the first batch was not sent")


def after_failure(page: Page, failures: int) -> dict:
    """The one stored batch, once the insert has recorded its ``failures``-th failed send."""
    records = pump_until(page, lambda: [r for r in stored_records(page) if r["n"] == failures])
    assert len(stored_records(page)) == 1
    return records[0]


def flush_sends_nothing(page: Page, posts: EventPosts) -> bool:
    before = len(posts.sent)
    page.evaluate("window.storefabric.flush()")
    page.wait_for_timeout(300)
    return len(posts.sent) == before


def test_a_503_with_retry_after_is_resent_only_after_that_many_seconds_and_counted_once(storefront, shopper):
    page = shopper.page
    posts = EventPosts(first_then(fulfilled(503, {"Retry-After": "2"}), passed_on))
    page.context.route(EVENTS, posts)

    open_and_send_first_batch(page, storefront.url(), posts)
    record = after_failure(page, 1)
    assert record["due"] == 2_000  # Retry-After, not the first jittered wait (0.5-1.5 s)
    page.clock.run_for(1_999)  # includes the 3 s interval tick
    assert flush_sends_nothing(page, posts)
    page.clock.run_for(1)
    page.evaluate("window.storefabric.flush()")
    pump_until(page, lambda: len(posts.sent) == 2, message="not resent after Retry-After")

    assert posts.sent[1] == posts.sent[0] == record["ids"]
    pump_until(page, lambda: stored_records(page) == [], message="the resend was not confirmed")
    rid = storefront.retailer.id
    wait_until(lambda: counted_total(rid) == 1 + PRODUCTS, timeout=20, message="the resent batch was not counted")
    assert RawEvent.objects.filter(retailer_id=rid).count() == 1 + PRODUCTS
    assert shopper.uncaught() == []


def test_without_retry_after_resends_wait_a_jittered_exponential_backoff(routed_shop, shopper):
    page = shopper.page
    routed_shop.posts.answer = lambda route, nth: fulfilled(503 if nth <= 3 else 202)(route, nth)

    open_and_send_first_batch(page, routed_shop.url(), routed_shop.posts)
    for failures, (shortest, longest) in enumerate([(500, 1_500), (1_000, 3_000), (2_000, 6_000)], start=1):
        record = after_failure(page, failures)
        assert shortest <= record["due"] <= longest  # 2^(failures-1) s, times 0.5-1.5
        assert flush_sends_nothing(page, routed_shop.posts)  # never at once
        page.clock.run_for(record["due"])
        page.evaluate("window.storefabric.flush()")
        pump_until(page, lambda n=failures: len(routed_shop.posts.sent) == n + 1, message="not resent when due")

    pump_until(page, lambda: stored_records(page) == [], message="the accepted resend was not removed")
    assert all(sent == routed_shop.posts.sent[0] for sent in routed_shop.posts.sent)
    assert shopper.uncaught() == []


@pytest.mark.parametrize("status", [400, 403, 413, 422])
def test_a_4xx_answer_drops_the_batch_without_a_retry(routed_shop, shopper, status):
    page = shopper.page
    routed_shop.posts.answer = fulfilled(status)

    open_and_send_first_batch(page, routed_shop.url(), routed_shop.posts)
    pump_until(page, lambda: stored_records(page) == [], message=f"a batch answered {status} was kept")
    page.clock.run_for(10 * MINUTE)

    assert flush_sends_nothing(page, routed_shop.posts)
    assert len(routed_shop.posts.sent) == 1
    assert shopper.uncaught() == []


@pytest.mark.parametrize(("status", "headers"), [(408, {}), (429, {"Retry-After": "4"})])
def test_408_and_429_answers_are_retried(routed_shop, shopper, status, headers):
    page = shopper.page
    routed_shop.posts.answer = first_then(fulfilled(status, headers), fulfilled(202))

    open_and_send_first_batch(page, routed_shop.url(), routed_shop.posts)
    record = after_failure(page, 1)
    if headers:
        assert record["due"] == 4_000
    page.clock.run_for(record["due"])
    page.evaluate("window.storefabric.flush()")

    pump_until(page, lambda: len(routed_shop.posts.sent) == 2, message=f"a batch answered {status} was not retried")
    assert routed_shop.posts.sent[1] == routed_shop.posts.sent[0]
    pump_until(page, lambda: stored_records(page) == [], message="the accepted resend was not removed")
    assert shopper.uncaught() == []


def test_at_most_20_batches_are_kept_and_the_oldest_go_first(routed_shop, shopper):
    page = shopper.page
    page.goto(routed_shop.url("/blank"))  # the shop's origin, before the insert runs
    seeded = [batch_seed(page, age_ms=minutes * MINUTE, due_in_ms=60 * MINUTE) for minutes in range(1, 23)]
    routed_shop.posts.answer = fulfilled(503, {"Retry-After": "3600"})  # the page's own batch stays too

    open_and_send_first_batch(page, routed_shop.url(), routed_shop.posts)
    own = routed_shop.posts.sent[0]
    pump_until(page, lambda: any(record["n"] == 1 for record in stored_records(page)), message="503 not recorded")
    kept = stored_records(page)

    assert len(kept) == 20
    assert sorted(record["ids"] for record in kept) == sorted([own, *seeded[:19]])  # minutes 20-22 pruned
    assert shopper.uncaught() == []


def test_batches_older_than_a_day_are_dropped_unsent(routed_shop, shopper):
    page = shopper.page
    page.goto(routed_shop.url("/blank"))
    expired = [batch_seed(page, age_ms=DAY + hours * 60 * MINUTE, due_in_ms=-MINUTE) for hours in (1, 6)]
    fresh = batch_seed(page, age_ms=23 * 60 * MINUTE, due_in_ms=-MINUTE)

    open_and_send_first_batch(page, routed_shop.url(), routed_shop.posts)
    pump_until(page, lambda: len(routed_shop.posts.sent) == 2, message="the due batches were not sent")
    pump_until(page, lambda: stored_records(page) == [], message="accepted batches were kept")
    page.clock.run_for(MINUTE)
    page.evaluate("window.storefabric.flush()")
    page.wait_for_timeout(300)

    sent = [event_id for batch in routed_shop.posts.sent for event_id in batch]
    assert not set(sent) & {event_id for batch in expired for event_id in batch}
    assert routed_shop.posts.times(fresh) == 1
    assert shopper.uncaught() == []
