"""A shopper's page views fan out as each mode says, and look like a browser on the retailer's site.

The shopper runs in ``shopper_driver.py``'s own process against a fake client
(importing locust patches a process with gevent); these tests read its calls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

PAGES = 3  # shopper_driver.PAGES: a session of three page views, the last one the checkout
PRODUCTS_PER_PAGE = 12
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sessions() -> dict[str, dict[str, Any]]:
    """One three-page session per fan-out mode, from one driver process (importing locust takes ~1.5 s)."""
    driver = [sys.executable, "-m", "loadtests.tests.shopper_driver", "batched", "per-product"]
    finished = subprocess.run(driver, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert finished.returncode == 0, finished.stderr
    return dict(json.loads(finished.stdout))


def pages_of(calls: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The calls split at each beacon: one list per page view, its beacon last."""
    pages, page = [], []
    for call in calls:
        page.append(call)
        if call["name"] == "beacon":
            pages.append(page)
            page = []
    return pages


def test_per_product_mode_makes_one_price_call_per_product(sessions):
    pages = pages_of(sessions["per-product"]["calls"])

    assert len(pages) == PAGES
    for page in pages:
        prices = [call for call in page if call["name"].startswith("price")]
        assert [call["name"] for call in prices] == ["price:sku"] * PRODUCTS_PER_PAGE
        assert len({call["path"].split("?")[0] for call in prices}) == PRODUCTS_PER_PAGE


def test_batched_mode_makes_one_price_call_for_the_whole_page(sessions):
    pages = pages_of(sessions["batched"]["calls"])

    assert len(pages) == PAGES
    for page in pages:
        (price,) = [call for call in page if call["name"].startswith("price")]
        assert price["name"] == "price:batch"
        assert price["path"].split("skus=")[1].split("&")[0].count("%2C") == PRODUCTS_PER_PAGE - 1


@pytest.mark.parametrize("mode", ["batched", "per-product"])
def test_every_call_is_a_browser_on_the_retailers_site_and_the_insert_is_cached(sessions, mode):
    calls = sessions[mode]["calls"]

    assert {call["headers"]["Origin"] for call in calls} == {sessions[mode]["retailer"]["origin"]}
    assert all(call["headers"]["User-Agent"].startswith("Mozilla/5.0 (") for call in calls)
    assert [call["name"] for call in calls].count("js") == 1
    assert sessions[mode]["pages"] == [None] * PAGES  # every page view succeeded


@pytest.mark.parametrize("mode", ["batched", "per-product"])
def test_beacons_carry_the_pages_events_cart_and_purchase_included(sessions, mode):
    retailer = sessions[mode]["retailer"]
    beacons = [call for call in sessions[mode]["calls"] if call["name"] == "beacon"]
    events = [event for beacon in beacons for event in beacon["events"]]
    kinds = [event["type"] for event in events]

    assert all(beacon["headers"]["Content-Type"].startswith("text/plain") for beacon in beacons)
    assert all(beacon["path"] == f"/v1/events?key={retailer['publishable_key']}" for beacon in beacons)
    assert kinds.count("page_view") == PAGES
    assert kinds.count("product_view") == PAGES * PRODUCTS_PER_PAGE
    assert (kinds.count("add_to_cart"), kinds.count("purchase")) == (1, 1)
    assert "purchase" in [event["type"] for event in beacons[-1]["events"]]  # checkout is the session's last page
    assert sessions[mode]["events_sent"] == {retailer["name"]: len(events)}


def visitors_of(calls: list[dict[str, Any]]) -> set[str]:
    queries = [urllib.parse.parse_qs(urllib.parse.urlsplit(call["path"]).query) for call in calls]
    return {query["visitor"][0] for query in queries if "visitor" in query}


@pytest.mark.parametrize("mode", ["batched", "per-product"])
def test_a_session_is_one_shopper_and_the_next_session_another(sessions, mode):
    """Each session sends its own client address (X-Forwarded-For, for a web behind one trusted
    proxy) and visitor id, so the per-client rate limit sees many shoppers, not the load generator."""
    calls, following = sessions[mode]["calls"], sessions[mode]["next_session_calls"]
    addresses = {call["headers"]["X-Forwarded-For"] for call in calls}
    next_addresses = {call["headers"]["X-Forwarded-For"] for call in following}

    assert len(addresses) == len(next_addresses) == 1
    assert addresses != next_addresses
    assert len(visitors_of(calls)) == len(visitors_of(following)) == 1
    assert visitors_of(calls) != visitors_of(following)
