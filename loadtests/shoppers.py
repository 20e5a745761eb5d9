"""Shoppers: page views that fan out into price calls, plus text/plain beacons.

Each simulated user is one browser that browses in sessions of a few page views;
each session is another shopper, with its own client address (sent as
``X-Forwarded-For``: run the web with ``TRUSTED_PROXY_COUNT=1``) and visitor id, from
a pool of ``shopper_identities`` pairs (``loadtests/identities.py``). It behaves
as ``storefabric.js`` does: the insert is fetched and then kept per its
``Cache-Control`` (revalidated with ``If-None-Match`` once stale); each page shows
``products_per_page`` products drawn with a Zipf skew from the retailer's catalog
and asks for their prices — in one call (``batched``, what the insert does) or one call per product, up to six at a
time like a browser (``per-product``, what naive integrations do). The page's
events (a page view and a product view per product shown, with its experiment
variant) go out in one ``text/plain`` beacon, so ``navigator.sendBeacon`` needs
no preflight. A share of sessions add to cart, and a share of those buy.

Every page view is also reported to locust as a request named ``page`` (type
``PAGE``), timed from its first call to its last price, so the reports show page
views/s beside calls/s.
"""

from __future__ import annotations

import json
import random
import re
import time
import urllib.parse
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import gevent.pool
from locust import task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.catalog import Retailer, ZipfSampler
from loadtests.scenario import Scenario
from loadtests.shapes import fixed_rate_pace

JS_PATH = "/v1/js/storefabric.js"
MAX_AGE = re.compile(r"max-age=(\d+)")
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
        self.key = urllib.parse.quote(self.retailer.publishable_key, safe="")
        self.browser_headers = {
            "User-Agent": self.rng.choice(USER_AGENTS),
            "Origin": self.retailer.origin,
            "Referer": f"{self.retailer.origin}/",
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate, br",
            "Accept-Language": "en-GB,en;q=0.9",
        }
        self.js_etag = ""
        self.js_fresh_until = 0.0
        self._session_start()
        if scenario.options.scenario == "fixed":
            # Paced users all spawned in one second would march in step; spread them over one period.
            time.sleep(self.rng.random() / fixed_rate_pace(scenario.options))

    def _session_start(self) -> None:
        """A session is the next shopper of the pool: its own client address and visitor."""
        options = self.scenario.options
        identity = self.scenario.identities.next()
        self.visitor = identity.visitor
        self.browser_headers = {**self.browser_headers, "X-Forwarded-For": identity.address}
        self.session_id = str(uuid.uuid4())
        self.pages_left = self.rng.randint(options.pages_per_session_min, options.pages_per_session_max)
        self.cart_on_page = self.purchase_on_page = -1
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
        prices: dict[str, dict[str, Any]] = {}
        try:
            if time.monotonic() >= self.js_fresh_until:
                self._get_js()
            prices = self._prices(skus)
        except PageFailedError as error:
            failure = error
        self.environment.events.request.fire(
            request_type="PAGE",
            name="page",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=failure,
            context={},
        )
        self._beacon(self._page_events(skus, prices))
        self.pages_left -= 1

    def _get_js(self) -> None:
        headers = {**self.browser_headers, "If-None-Match": self.js_etag} if self.js_etag else self.browser_headers
        with self.client.get(JS_PATH, headers=headers, name="js", catch_response=True) as response:
            if response.status_code not in (200, 304) or (response.status_code == 200 and not response.content):
                response.failure(f"JS insert answered {response.status_code}")
                raise PageFailedError("js")
            self.js_etag = response.headers.get("ETag") or self.js_etag
            max_age = MAX_AGE.search(response.headers.get("Cache-Control") or "")
            self.js_fresh_until = time.monotonic() + (int(max_age.group(1)) if max_age else 0)

    def _prices(self, skus: list[str]) -> dict[str, dict[str, Any]]:
        query = f"key={self.key}&visitor={self.visitor}"
        if self.scenario.options.mode == "batched":
            listed = urllib.parse.quote(",".join(skus), safe="")
            return self._price_call(f"/v1/prices?skus={listed}&{query}", "price:batch", skus)
        found: dict[str, dict[str, Any]] = {}
        failures: list[str] = []

        def one(sku: str) -> None:
            try:
                found.update(self._price_call(f"/v1/prices/{sku}?{query}", "price:sku", [sku]))
            except PageFailedError:
                failures.append(sku)

        gevent.pool.Pool(self.scenario.options.parallel_calls).map(one, skus)
        if failures:
            raise PageFailedError(f"{len(failures)} of {len(skus)} price calls failed")
        return found

    def _price_call(self, path: str, name: str, skus: list[str]) -> dict[str, dict[str, Any]]:
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

    def _page_events(self, skus: list[str], prices: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """What the insert queues for one page: a page view, then a product view per product shown."""
        now = datetime.now(UTC).isoformat()

        def event(kind: str, sku: str | None = None, **extra: Any) -> dict[str, Any]:
            fields: dict[str, Any] = {"id": str(uuid.uuid4()), "type": kind, "ts": now, "session": self.session_id}
            if sku is not None:
                fields["sku"] = sku
                variant = prices.get(sku, {}).get("variant")
                if variant:
                    fields["variant"] = variant
            return {**fields, **extra}

        events = [event("page_view"), *(event("product_view", sku) for sku in skus)]
        bought = {"quantity": 1, **({"price": str(prices[skus[0]]["price"])} if skus[0] in prices else {})}
        if self.pages_left == self.cart_on_page:
            events.append(event("add_to_cart", skus[0], **bought))
        if self.pages_left == self.purchase_on_page:
            events.append(event("purchase", skus[0], **bought))
        return events

    def _beacon(self, events: list[dict[str, Any]]) -> None:
        headers = {**self.browser_headers, "Content-Type": "text/plain;charset=UTF-8"}
        body = json.dumps({"events": events}, separators=(",", ":"))
        path = f"/v1/events?key={self.key}"
        with self.client.post(path, data=body, headers=headers, name="beacon", catch_response=True) as response:
            if response.status_code != 202:
                response.failure(f"beacon answered {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                accepted = json.loads(response.text or "{}").get("accepted")
            except ValueError:
                accepted = None
            self.scenario.recorder.events_accepted(self.retailer.name, len(events), accepted)


def prices_by_sku(body: str) -> dict[str, dict[str, Any]]:
    """``{sku: price row}`` of a price answer: ``{"prices": [...], "missing": [...]}`` or one row."""
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    rows = data["prices"] if isinstance(data.get("prices"), list) else [data]
    return {row["sku"]: row for row in rows if isinstance(row, dict) and "sku" in row and "price" in row}
