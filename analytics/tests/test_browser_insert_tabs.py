"""Several tabs of one shop share the insert's stored batches (one origin, one localStorage).

Two pages in one browser context against the live stack: every stored batch
reaches the server once and is counted once, a batch one tab is still sending
is not sent again by the other (Web Locks), and a failure in one tab never
brings back a batch the other tab had confirmed (Web Locks or only the lease).
"""

from __future__ import annotations

from collections import Counter

import pytest
from playwright.sync_api import Page, Route

from analytics.models import RawEvent
from analytics.tests.browser_routes import (
    BLANK_PAGE,
    EVENTS,
    NO_WEB_LOCKS,
    EventPosts,
    batch_seed,
    clock_paused,
    pump_until,
    stored_records,
)
from analytics.tests.browser_support import ALL_PRICED, PRODUCTS, html_page, shopper_watch
from analytics.tests.probes import counted_total

pytestmark = pytest.mark.browser

SEEDED_BATCHES = 8
EVENTS_PER_BATCH = 3
LEASE = 15_000  # the insert's lease on a batch it is sending


def _pump_until_counted(first: Page, second: Page, retailer_id: int, total: int) -> None:
    """Both tabs send what they still hold until the server counted ``total`` events. Routed
    requests reach the server only while Playwright is pumped (``pump_until``), never during a
    plain sleep, so a ``wait_until`` here would hold back the tabs' last batches."""

    def all_counted() -> bool:
        first.evaluate("window.storefabric.flush()")
        second.evaluate("window.storefabric.flush()")
        return counted_total(retailer_id) == total

    pump_until(first, all_counted, timeout=60, message="events not counted")


def test_two_tabs_send_each_stored_batch_once_and_it_is_counted_once(storefront, shopper):
    storefront.pages.routes[("GET", "/blank")] = html_page(BLANK_PAGE)
    first = shopper.page
    first.goto(storefront.url(path="/blank"))
    seeded = [batch_seed(first, age_ms=60_000, due_in_ms=-1) for _ in range(SEEDED_BATCHES)]
    posts = EventPosts(lambda route, nth: route.continue_())
    first.context.route(EVENTS, posts)
    second = shopper_watch(first.context.new_page())

    first.goto(storefront.url())
    second.page.goto(storefront.url())
    for _ in range(5):  # ticks of both tabs, on top of their timers
        first.evaluate("window.storefabric.flush()")
        second.page.evaluate("window.storefabric.flush()")
    pump_until(first, lambda: stored_records(first) == [], timeout=30, message="stored batches not confirmed")

    assert [posts.times(ids) for ids in seeded] == [1] * SEEDED_BATCHES
    seeded_ids = [event_id for ids in seeded for event_id in ids]
    sends = Counter(event_id for batch in posts.sent for event_id in batch)
    assert [sends[event_id] for event_id in seeded_ids] == [1] * len(seeded_ids)
    rid = storefront.retailer.id
    total = SEEDED_BATCHES * EVENTS_PER_BATCH + 2 * (1 + PRODUCTS)
    _pump_until_counted(first, second.page, rid, total)
    assert RawEvent.objects.filter(retailer_id=rid, event_id__in=seeded_ids).count() == len(seeded_ids)
    assert shopper.uncaught() == second.uncaught() == []


@pytest.mark.parametrize("web_locks", [True, False], ids=["web-locks", "lease-only"])
def test_a_batch_one_tab_is_sending_is_not_resurrected_by_its_failure(storefront, shopper, web_locks):
    """The first tab's request for the stored batch hangs past its lease. With Web Locks the other tab
    leaves it alone; with only the lease it sends and confirms it. Either way, when the first request
    then fails, the batch is not written back: it reaches the server and is counted exactly once."""
    context = shopper.page.context
    if not web_locks:
        context.add_init_script(NO_WEB_LOCKS)
    storefront.pages.routes[("GET", "/blank")] = html_page(BLANK_PAGE)
    first = shopper.page
    first.goto(storefront.url(path="/blank"))
    stored = batch_seed(first, age_ms=60_000, due_in_ms=-1)
    held: list[Route] = []

    def hold_the_first_send(route: Route, nth: int) -> None:
        if not held and posts.times(stored) == 1 and set(stored) <= set(posts.sent[-1]):
            held.append(route)
        else:
            route.continue_()

    posts = EventPosts(hold_the_first_send)
    context.route(EVENTS, posts)
    clock_paused(first)
    first.goto(storefront.url())
    first.wait_for_function(ALL_PRICED, timeout=15_000)
    first.clock.run_for(1_500)
    pump_until(first, lambda: held, message="the stored batch was not sent")
    second = shopper_watch(context.new_page())
    second.page.goto(storefront.url())
    second.page.wait_for_function(ALL_PRICED, timeout=15_000)

    first.clock.run_for(LEASE + 1_000)  # both tabs tick; the first one's lease has run out
    first.evaluate("window.storefabric.flush()")
    second.page.evaluate("window.storefabric.flush()")
    first.wait_for_timeout(500)
    if web_locks:
        assert posts.times(stored) == 1  # the first tab still holds the batch's lock
    else:
        pump_until(first, lambda: not any(r["ids"] == stored for r in stored_records(first)), message="not resent")
        # Without Web Locks a lease in localStorage is not atomic across tabs: both tabs may take
        # the expired lease in the same tick and send (the server counts the batch once, below).
        assert posts.times(stored) >= 2

    with first.expect_event("requestfailed"):
        held[0].abort()  # the first tab's send fails now
    first.wait_for_timeout(500)
    backing_off = [record["n"] for record in stored_records(first) if record["ids"] == stored]
    assert backing_off == ([1] if web_locks else [])  # lease only: confirmed by the other tab, and stays so
    for _ in range(3):  # long enough for any backoff of a first failure (at most 1.5 s)
        first.clock.run_for(3_000)
        first.evaluate("window.storefabric.flush()")
        second.page.evaluate("window.storefabric.flush()")
        first.wait_for_timeout(300)
    pump_until(first, lambda: stored_records(first) == [], timeout=30, message="stored batches not confirmed")

    if web_locks:
        assert posts.times(stored) == 2  # held + the first tab's retry
    else:
        assert 2 <= posts.times(stored) <= 3  # held + the other tab (+ the first, if both took the lease)
    rid = storefront.retailer.id
    _pump_until_counted(first, second.page, rid, EVENTS_PER_BATCH + 2 * (1 + PRODUCTS))
    assert RawEvent.objects.filter(retailer_id=rid, event_id__in=stored).count() == EVENTS_PER_BATCH
    assert shopper.uncaught() == second.uncaught() == []
