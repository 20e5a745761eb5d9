"""Shoppers: page views that fan out into price calls, plus text/plain beacons.

A shopper browses in sessions of a few page views. The first page of a session
loads the JS insert (a browser caches it afterwards); each page shows
``products_per_page`` products drawn with a Zipf skew from the retailer's
catalog and asks for their prices — in one call (``batched``, what the insert
does) or one call per product, up to six at a time like a browser
(``per-product``, what naive integrations do). The page's events go out in one
``text/plain`` beacon, so ``navigator.sendBeacon`` needs no preflight. A share of
sessions add to cart, and a share of those buy.

Every page view is also reported to locust as a request named ``page`` (type
``PAGE``), timed from its first call to its last price, so the reports show page
views/s beside calls/s.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import gevent.pool
from locust import task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.catalog import Retailer, ZipfSampler
from loadtests.scenario import Scenario

JS_PATH = "/v1/js/storefabric.js"
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
)


class PageFailedError(Exception):
    """A call the page depends on failed; the page view counts as failed."""


class ShopperUser(FastHttpUser):
    """One shopper's browser on one retailer's site."""

    abstract = True
    scenario: ClassVar[Scenario]

    def on_start(self) -> None:
        scenario = self.scenario
        index = scenario.next_shopper_retailer()
        self.retailer: Retailer = scenario.retailers[index]
        self.sampler: ZipfSampler = scenario.samplers[index]
        self.rng = random.Random()
        self.browser_headers = {
            "User-Agent": self.rng.choice(USER_AGENTS),
            "Origin": self.retailer.origin,
            "Accept": "*/*",
            "Accept-Language": "en-GB,en;q=0.9",
        }
        self._session_start()
        if scenario.options.scenario == "fixed":
            # Paced users all spawned in one second would march in step; spread them over one period.
            time.sleep(self.rng.random() / scenario.options.pace_per_user)

    def _session_start(self) -> None:
        options = self.scenario.options
        self.session_id = uuid.uuid4().hex
        self.js_cached = False
        self.pages_left = self.rng.randint(options.pages_per_session_min, options.pages_per_session_max)
        self.cart_on_page = -1
        self.purchase_on_page = -1
        if self.rng.random() < options.cart_share:
            self.cart_on_page = self.rng.randint(1, self.pages_left)
            if self.rng.random() < options.purchase_share:
                self.purchase_on_page = 1  # the last page of the session is the checkout

    @task
    def page_view(self) -> None:
        if self.pages_left <= 0:
            self._session_start()
        skus = self.sampler.distinct(self.rng, self.scenario.options.products_per_page)
        started = time.perf_counter()
        failure: Exception | None = None
        try:
            if not self.js_cached:
                self._get_js()
            prices = self._prices(skus)
        except PageFailedError as error:
            failure, prices = error, {}
        self.environment.events.request.fire(
            request_type="PAGE",
            name="page",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=failure,
            context={},
        )
        self._beacon(self._page_events(skus[0], prices.get(skus[0])))
        self.pages_left -= 1

    def _get_js(self) -> None:
        with self.client.get(JS_PATH, headers=self.browser_headers, name="js", catch_response=True) as response:
            if response.status_code != 200 or not response.content:
                response.failure(f"JS insert answered {response.status_code}")
                raise PageFailedError("js")
            self.js_cached = True

    def _prices(self, skus: list[str]) -> dict[str, Any]:
        if self.scenario.options.mode == "batched":
            return self._price_call(
                f"/v1/prices?skus={','.join(skus)}&key={self.retailer.publishable_key}", "price:batch", skus
            )
        found: dict[str, Any] = {}
        failures: list[str] = []

        def one(sku: str) -> None:
            try:
                found.update(
                    self._price_call(f"/v1/prices/{sku}?key={self.retailer.publishable_key}", "price:sku", [sku])
                )
            except PageFailedError:
                failures.append(sku)

        pool = gevent.pool.Pool(self.scenario.options.parallel_calls)
        pool.map(one, skus)
        if failures:
            raise PageFailedError(f"{len(failures)} price calls failed")
        return found

    def _price_call(self, path: str, name: str, skus: list[str]) -> dict[str, Any]:
        with self.client.get(path, headers=self.browser_headers, name=name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"price answered {response.status_code}: {(response.text or '')[:200]}")
                raise PageFailedError(name)
            prices = prices_by_sku(response.text or "")
            missing = [sku for sku in skus if sku not in prices]
            if missing:
                response.failure(f"no price for {len(missing)} of {len(skus)} SKUs, e.g. {missing[0]}")
                raise PageFailedError(name)
            return prices

    def _page_events(self, main_sku: str, price: Any) -> list[dict[str, Any]]:
        now = datetime.now(UTC).isoformat()

        def event(kind: str, sku: str | None = None, **extra: Any) -> dict[str, Any]:
            fields = {"id": str(uuid.uuid4()), "type": kind, "ts": now, "session": self.session_id, **extra}
            return fields if sku is None else {**fields, "sku": sku}

        events = [event("page_view"), event("product_view", main_sku)]
        amount = price_amount(price)
        if self.pages_left == self.cart_on_page:
            events.append(event("add_to_cart", main_sku, quantity=1, **({"price": amount} if amount else {})))
        if self.pages_left == self.purchase_on_page:
            events.append(event("purchase", main_sku, quantity=1, **({"price": amount} if amount else {})))
        return events

    def _beacon(self, events: list[dict[str, Any]]) -> None:
        headers = {**self.browser_headers, "Content-Type": "text/plain;charset=UTF-8"}
        body = json.dumps({"events": events}, separators=(",", ":"))
        path = f"/v1/events?key={self.retailer.publishable_key}"
        with self.client.post(path, data=body, headers=headers, name="beacon", catch_response=True) as response:
            if response.status_code != 202:
                response.failure(f"beacon answered {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                accepted = json.loads(response.text or "{}").get("accepted")
            except ValueError:
                accepted = None
            self.scenario.recorder.events_accepted(self.retailer.name, len(events), accepted)


def prices_by_sku(body: str) -> dict[str, Any]:
    """The ``{sku: price entry}`` of a price answer (one SKU or many), or ``{}`` if unreadable."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if isinstance(data, dict) and isinstance(data.get("prices"), list):
        return {entry["sku"]: entry for entry in data["prices"] if isinstance(entry, dict) and "sku" in entry}
    if isinstance(data, dict) and isinstance(data.get("prices"), dict):
        return dict(data["prices"])
    if isinstance(data, dict) and "sku" in data:
        return {data["sku"]: data}
    return {}


def price_amount(entry: Any) -> str | None:
    """The shopper's price (a decimal string) in a price entry, if it has one."""
    if isinstance(entry, dict):
        value = entry.get("price")
        return str(value) if value is not None else None
    return None
