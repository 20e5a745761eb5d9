"""The retailer's own server: catalog, competitor prices, rules and analytics, at a low steady rate.

One user for all retailers (``fixed_count = 1``), paced at ``retailer_ops_per_s``;
each operation picks one of the retailers whose shoppers are running and uses its
secret key in the ``Authorization`` header, as a server would.
"""

from __future__ import annotations

import random
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

    def _send(self, method: str, path: str, name: str, retailer: Retailer, body: Any = None) -> None:
        expected = {"GET": (200,), "PUT": (200, 201), "POST": (200, 201, 202), "PATCH": (200,)}[method]
        with self.client.request(
            method, path, json=body, headers=self._headers(retailer), name=name, catch_response=True
        ) as response:
            if response.status_code not in expected:
                response.failure(f"{method} {path} answered {response.status_code}: {(response.text or '')[:200]}")

    def _money(self, low: int, high: int) -> str:
        return str(Decimal(self.rng.randint(low * 100, high * 100)) / 100)

    @task(4)
    def product_upsert(self) -> None:
        retailer = self._retailer()
        sku = self.rng.choice(retailer.skus)
        base = Decimal(self._money(20, 200))
        body = {
            "name": f"Load test product {sku}",
            "currency": "EUR",
            "base_price": str(base),
            "cost": str((base * Decimal("0.6")).quantize(Decimal("0.01"))),
            "list_price": str((base * Decimal("1.3")).quantize(Decimal("0.01"))),
            "inventory": self.rng.randint(0, 500),
        }
        self._send("PUT", f"/v1/products/{sku}", "retailer:product-upsert", retailer, body)

    @task(3)
    def competitor_price(self) -> None:
        retailer = self._retailer()
        sku = self.rng.choice(retailer.skus)
        body = {"sku": sku, "competitor": "rival.example", "price": self._money(20, 200)}
        self._send("POST", "/v1/competitor-prices", "retailer:competitor-price", retailer, body)

    @task(1)
    def rule_edit(self) -> None:
        retailer = self._retailer()
        body = {"kind": "demand", "name": "load test demand", "params": {"sensitivity": "0.1"}}
        self._send("POST", "/v1/rules", "retailer:rule-edit", retailer, body)

    @task(2)
    def analytics_read(self) -> None:
        retailer = self._retailer()
        since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        self._send("GET", f"/v1/analytics/summary?since={since}", "retailer:analytics-read", retailer)
