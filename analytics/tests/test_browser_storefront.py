"""The insert in a real headless Chromium, on a retailer page served from another origin than the API.

Live stack per test: gunicorn (the API, with an access log), a real ingest
worker, the demo retailer from ``seed_demo``, and a page server on another port.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from analytics.models import EventType, RawEvent
from analytics.tests.browser_support import (
    ALL_PRICED,
    PRODUCTS,
    LocalServer,
    Storefront,
    broken_api,
    html_page,
    http_error_status,
    shown_prices,
    storefront_start,
)
from analytics.tests.probes import counted_by_sku, counted_total
from workers import publish
from workers.testing import PrivateRedis, private_redis_server, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def storefront_on_private_broker(settings, tmp_path, celery_worker) -> Iterator[tuple[Storefront, PrivateRedis]]:
    with private_redis_server() as broker:
        settings.CELERY_BROKER_URL = broker.url  # gunicorn and the worker started below use it
        publish.web_publish_reset()
        shop = storefront_start(settings, tmp_path, celery_worker)
        yield shop, broker
        shop.stop()
    publish.web_publish_reset()


def us_dollars(amount: str) -> str:
    return f"${Decimal(amount):,.2f}"


def test_prices_arrive_and_events_count_once_across_a_reload_without_preflights(storefront, shopper):
    page = shopper.page
    page.goto(storefront.url())
    page.wait_for_function(ALL_PRICED, timeout=15_000)
    visitor = page.evaluate("localStorage.getItem('sf1:v')")
    expected = storefront.prices(visitor)
    assert len(expected) == PRODUCTS
    assert shown_prices(page) == {sku: us_dollars(price["price"]) for sku, price in expected.items()}
    rid = storefront.retailer.id
    wait_until(lambda: counted_total(rid) == 1 + PRODUCTS, timeout=20, message="first page's events not counted")

    page.click('[data-cart="DEMO-00001"]')
    page.click('[data-buy="DEMO-00002"]')
    page.reload()  # pagehide: the cart and purchase go out by sendBeacon, saved first, resent later
    page.wait_for_function(ALL_PRICED, timeout=15_000)
    wait_until(lambda: shopper.stored_batches() == 0, timeout=20, message="stored batches not confirmed")
    wait_until(lambda: counted_total(rid) == 2 * (1 + PRODUCTS) + 2, timeout=20, message="events not counted")
    wait_until(lambda: storefront.api.count("POST", "/v1/events") >= 4, timeout=10)  # incl. the beacon's resend
    storefront.worker.wait_for_output("events_ingested")

    assert counted_total(rid) == 2 * (1 + PRODUCTS) + 2
    assert RawEvent.objects.filter(retailer_id=rid).count() == 2 * (1 + PRODUCTS) + 2
    assert counted_by_sku(rid, "add_to_cart") == {"DEMO-00001": 1}
    assert counted_by_sku(rid, "purchase") == {"DEMO-00002": 1}
    purchase = RawEvent.objects.get(retailer_id=rid, type=EventType.PURCHASE)
    assert purchase.price == Decimal(expected["DEMO-00002"]["price"])
    assert purchase.variant == expected["DEMO-00002"].get("variant", "")
    assert storefront.api.count("OPTIONS") == 0
    assert shopper.uncaught() == []


def test_a_batch_refused_while_the_broker_is_down_is_counted_once_after_a_reload(storefront_on_private_broker, shopper):
    storefront, broker = storefront_on_private_broker
    rid = storefront.retailer.id
    broker.kill()
    page = shopper.page
    page.goto(storefront.url())
    page.wait_for_function(ALL_PRICED, timeout=15_000)  # prices need no broker
    wait_until(lambda: storefront.api.count("POST", "/v1/events", status=503) >= 1, timeout=15)
    assert shopper.stored_batches() >= 1  # kept for later, with the backoff Retry-After asked for

    broker.restart()
    page.reload()
    wait_until(lambda: shopper.stored_batches() == 0, timeout=30, message="stored batch never confirmed")
    wait_until(lambda: counted_total(rid) == 2 * (1 + PRODUCTS), timeout=30, message="events not counted")

    assert RawEvent.objects.filter(retailer_id=rid).count() == 2 * (1 + PRODUCTS)
    assert counted_by_sku(rid) == {f"DEMO-{n:05d}": 2 for n in range(1, PRODUCTS + 1)}
    assert storefront.api.count("OPTIONS") == 0
    assert shopper.uncaught() == []


def test_from_an_origin_not_allowed_the_calls_fail_inside_the_page(storefront, shopper):
    page = shopper.page
    page.goto(storefront.url(host="localhost"))  # same page, another origin: not on the retailer's list
    wait_until(lambda: storefront.api.count("GET", "/v1/prices", status=403) >= 1, timeout=15)
    wait_until(lambda: storefront.api.count("POST", "/v1/events", status=403) >= 1, timeout=15)
    api = storefront.api.origin
    outcome = page.evaluate(
        "url => fetch(url).then(r => 'read ' + r.status, e => 'failed: ' + e.name)",
        f"{api}/v1/prices?skus=DEMO-00001&key={storefront.key}",
    )
    assert outcome == "failed: TypeError"
    assert page.text_content('[data-sf-sku="DEMO-00001"]').endswith("USD")  # server-rendered prices stay
    assert not page.evaluate(ALL_PRICED.replace(".every(", ".some("))
    status, headers = http_error_status(
        f"{api}/v1/prices?skus=DEMO-00001&key={storefront.key}", {"Origin": f"http://localhost:{storefront.pages.port}"}
    )
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    assert counted_total(storefront.retailer.id) == 0
    assert shopper.stored_batches() >= 1  # the page cannot read why (no CORS headers): kept, bounded, aged out
    assert storefront.api.count("OPTIONS") == 0
    assert shopper.uncaught() == []


RETAILER_PAGE = """<!doctype html><html lang="de-DE"><head><meta charset="utf-8">
<script src="{api}/v1/js/storefabric.js" data-key="pk_test_page" async></script></head><body>
<span data-sf-sku="A-1">19,99 €</span> <span data-sf-sku="B-2">5,00 €</span>
<p id="own">the page's own script ran</p>
<script>document.getElementById('own').dataset.ok = '1';</script></body></html>"""


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_with_the_api_failing_or_hanging_the_page_keeps_its_prices_and_never_sees_an_error(shopper, mode):
    api = broken_api(mode)
    pages = LocalServer({})
    pages.routes[("GET", "/shop")] = html_page(RETAILER_PAGE.format(api=f"http://127.0.0.1:{api.port}").encode())
    try:
        page = shopper.page
        page.goto(pages.url("/shop"))
        wait_until(lambda: ("POST", "/v1/events") in api.hits, timeout=15)
        page.wait_for_timeout(4_500 if mode == "hang" else 500)  # past the insert's price timeout

        assert page.evaluate("typeof window.storefabric.track") == "function"
        assert page.text_content('[data-sf-sku="A-1"]') == "19,99 €"
        assert page.get_attribute("#own", "data-ok") == "1"
        assert shopper.stored_batches() >= 1  # kept for a later retry
        assert ("OPTIONS", "/v1/prices") not in api.hits
        assert shopper.uncaught() == []
    finally:
        api.stop()
        pages.stop()
