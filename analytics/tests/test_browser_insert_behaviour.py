"""The insert on a live storefront in headless Chromium: the locale it formats in, and a prerendered page.

Live stack per test (see ``conftest.py``): gunicorn, a real ingest worker, the
demo retailer's page served from another origin.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from analytics.models import RawEvent
from analytics.tests.browser_routes import FAKE_PRERENDER, clock_paused
from analytics.tests.browser_support import ALL_PRICED, PRODUCTS, html_page, shown_prices
from analytics.tests.probes import counted_total
from workers.testing import wait_until

pytestmark = pytest.mark.browser

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}


def german(amount: str, currency: str) -> str:
    """What Intl.NumberFormat('de-DE', {style: 'currency'}) shows: 1.234,56 $ (a no-break space before the sign)."""
    digits = f"{Decimal(amount):,.2f}".translate(str.maketrans(",.", ".,"))
    return f"{digits}\u00a0{SYMBOLS[currency]}"


def test_prices_are_formatted_in_the_pages_html_lang_not_the_browsers_locale(storefront, shopper):
    demo = storefront.api.get("/demo/")
    assert b'<html lang="en-US">' in demo
    storefront.pages.routes[("GET", "/de")] = html_page(demo.replace(b'<html lang="en-US">', b'<html lang="de-DE">'))
    page = shopper.page

    page.goto(storefront.url(path="/de"))
    page.wait_for_function(ALL_PRICED, timeout=15_000)

    assert page.evaluate("[navigator.language, document.documentElement.lang]") == ["en-US", "de-DE"]
    expected = storefront.prices(page.evaluate("localStorage.getItem('sf1:v')"))
    assert len(expected) == PRODUCTS
    assert shown_prices(page) == {sku: german(price["price"], price["currency"]) for sku, price in expected.items()}
    assert shopper.uncaught() == []


def test_a_prerendered_page_sends_nothing_until_it_is_shown(storefront, shopper):
    page = shopper.page
    api_calls: list[str] = []
    page.on("request", lambda request: "/v1/" in request.url and api_calls.append(request.url))
    page.add_init_script(FAKE_PRERENDER)
    clock_paused(page)

    page.goto(storefront.url())
    page.clock.run_for(30_000)  # ten of the insert's ticks, were it running
    page.wait_for_timeout(500)

    assert page.evaluate("typeof window.storefabric.track") == "function"
    assert [url for url in api_calls if "/v1/js/" not in url] == []
    assert not page.evaluate(ALL_PRICED.replace(".every(", ".some("))
    assert storefront.api.count("GET", "/v1/prices") == storefront.api.count("POST", "/v1/events") == 0

    page.evaluate("window.__sfShow()")  # the prerendered page is shown: prerenderingchange
    page.wait_for_function(ALL_PRICED, timeout=15_000)
    page.clock.run_for(1_500)  # the first tick, 0.5-1.5 s after start
    rid = storefront.retailer.id
    wait_until(lambda: counted_total(rid) == 1 + PRODUCTS, timeout=20, message="events of the shown page not counted")

    assert storefront.api.count("GET", "/v1/prices") == 1
    assert RawEvent.objects.filter(retailer_id=rid).count() == 1 + PRODUCTS
    assert shopper.uncaught() == []
