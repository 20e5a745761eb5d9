"""The insert splits a page's SKUs into price requests that fit: at most 100 SKUs and a bounded URL.

Live stack (see ``conftest.py``): gunicorn, a real ingest worker, a retailer page on another
origin, headless Chromium.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from analytics.jsmin import SOURCE
from analytics.tests.browser_support import ALL_PRICED, html_page
from pricing.hotpath import MAX_SKUS
from pricing.services import products_bulk_upsert
from workers.testing import wait_until

pytestmark = pytest.mark.browser

PAGE_SKUS = 250  # of 64 characters: more than two requests of 100 SKUs, and ~16,000 characters of SKUs
PRODUCT = {"name": "Long SKU", "currency": "USD", "base_price": "10.00", "cost": "4.00", "list_price": "15.00"}


def insert_constant(name: str) -> int:
    """A constant of the insert's source (its own dialect of a limit: ``var MAX_URL = 4000;``)."""
    found = re.search(rf"var {name} = (\d+);", SOURCE.read_text())
    assert found, f"the insert declares no {name}"
    return int(found[1])


def test_a_page_with_more_skus_than_one_request_takes_is_priced_in_requests_that_fit(storefront, shopper):
    skus = [f"LONG-{number:03d}-".ljust(64, "X") for number in range(PAGE_SKUS)]
    products_bulk_upsert(retailer_id=storefront.retailer.id, rows=[{**PRODUCT, "sku": sku} for sku in skus], actor="t")
    marks = "".join(f'<span data-sf-sku="{sku}">$1</span>' for sku in skus)
    script = f'<script src="{storefront.api.origin}/v1/js/storefabric.js" data-key="{storefront.key}" async></script>'
    storefront.pages.routes[("GET", "/long")] = html_page(
        f'<!doctype html><html lang="en-US"><body>{marks}{script}</body></html>'.encode()
    )
    page = shopper.page
    price_urls: list[str] = []
    page.on("request", lambda request: "/v1/prices" in request.url and price_urls.append(request.url))

    page.goto(storefront.url(path="/long"))
    page.wait_for_function(ALL_PRICED, timeout=20_000)

    assert insert_constant("MAX_SKUS") == MAX_SKUS
    asked = [parse_qs(urlsplit(url).query)["skus"][0].split(",") for url in price_urls]
    assert sorted(sku for request in asked for sku in request) == skus  # each SKU asked once
    assert max(len(request) for request in asked) <= MAX_SKUS
    assert max(len(url) for url in price_urls) <= insert_constant("MAX_URL")
    # gunicorn writes its access-log line after the response: the browser may have the last
    # answer before the line exists (CI: 4 lines for 5 answers)
    wait_until(
        lambda: storefront.api.count("GET", "/v1/prices", status=200) == len(price_urls),
        timeout=5,
        message=f"access log: not {len(price_urls)} answered price requests",
    )
    assert shopper.uncaught() == []
