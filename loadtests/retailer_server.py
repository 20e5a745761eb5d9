"""The retailer's own server: catalog, competitor prices, rules and analytics, at a low steady rate.

One user for all retailers (``fixed_count = 1``), paced at ``retailer_ops_per_s``;
each operation picks one of the retailers whose shoppers are running and uses its
secret key in the ``Authorization`` header, as a server would. The mix is a
catalog feed (10), competitor prices (6), analytics reads (3) and a rule edit
(1): at the default 0.5 operations/s that is one whole-catalog repricing every
~40 s, which on a 10,000-SKU catalog keeps the pricing workers visibly busy.
"""

from __future__ import annotations

import random
import urllib.parse
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from locust import task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.catalog import Retailer
from loadtests.scenario import Scenario


class RetailerServerUser(FastHttpUser):
    abstract = True
    fixed_count = 1
    scenario: ClassVar[Scenario]

    def on_start(self) -> None:
        self.rng = random.Random()

    def _retailer(self) -> Retailer:
        return self.rng.choice(self.scenario.active_retailers())

    def _headers(self, retailer: Retailer) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {retailer.secret_key}",
            "Content-Type": "application/json",
            "User-Agent": "storefabric-loadtest-retailer/1.0",
        }

    def _send(self, method: str, path: str, name: str, retailer: Retailer, body: Any = None) -> Any:
        """Make one call; anything but the documented success status is a failure. Returns the JSON body."""
        expected = {"GET": (200,), "PUT": (200, 201), "PATCH": (202,)}[method]
        with self.client.request(
            method, path, json=body, headers=self._headers(retailer), name=name, catch_response=True
        ) as response:
            if response.status_code not in expected:
                response.failure(f"{method} {path} answered {response.status_code}: {(response.text or '')[:200]}")
                return None
            try:
                return response.json()
            except ValueError:
                response.failure(f"{method} {path} answered {response.status_code} without JSON")
                return None

    def _money(self, low: int, high: int) -> Decimal:
        return Decimal(self.rng.randint(low * 100, high * 100)) / 100

    @task(10)
    def product_upsert(self) -> None:
        """A catalog sync changes one product's price and stock (the seed's price structure kept)."""
        retailer = self._retailer()
        sku = self.rng.choice(retailer.skus)
        base = self._money(5, 200)
        body = {
            "name": f"Product {sku}",
            "base_price": str(base),
            "cost": str((base * Decimal("0.55")).quantize(Decimal("0.01"))),
            "list_price": str((base * Decimal("1.30")).quantize(Decimal("0.01"))),
            "inventory": self.rng.randint(0, 1500),
        }
        self._send("PUT", f"/v1/products/{sku}", "retailer:product-upsert", retailer, body)

    @task(6)
    def competitor_price(self) -> None:
        retailer = self._retailer()
        sku = self.rng.choice(retailer.skus)
        body = {"competitor": "rival.example", "price": str(self._money(5, 200))}
        self._send("PUT", f"/v1/competitor-prices/{sku}", "retailer:competitor-price", retailer, body)

    @task(1)
    def rule_edit(self) -> None:
        """Retune the demand rule's sensitivity; the service answers 202 and reprices the catalog."""
        retailer = self._retailer()
        rules = self._send("GET", "/v1/rules", "retailer:rule-list", retailer)
        demand = [rule for rule in rules or [] if rule.get("kind") == "demand"]
        if not demand:
            return
        sensitivity = f"{self.rng.uniform(0.3, 0.7):.2f}"
        body = {"params": {**demand[0]["params"], "sensitivity": sensitivity}}
        self._send("PATCH", f"/v1/rules/{demand[0]['id']}", "retailer:rule-edit", retailer, body)

    @task(3)
    def analytics_read(self) -> None:
        retailer = self._retailer()
        since = urllib.parse.quote((datetime.now(UTC) - timedelta(minutes=5)).isoformat(), safe="")
        self._send("GET", f"/v1/analytics/summary?since={since}", "retailer:analytics-read", retailer)
