"""Pricing test helpers: products through the API, price lookups with a publishable key."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from conftest import Tenant
from pricing.models import PricingPolicy, RepricingShard
from pricing.services import repricing_shard_run

PRODUCT = {
    "name": "Trail shoe",
    "currency": "USD",
    "base_price": "100.00",
    "cost": "4.00",
    "list_price": "150.00",
    "inventory": 50,
}


def product_put(tenant: Tenant, sku: str, **fields: Any) -> Any:
    return tenant.client().put(f"/v1/products/{sku}", {**PRODUCT, **fields}, format="json")


def prices_get(tenant: Tenant, query: str, origin: str | None = None) -> Any:
    """GET /v1/prices… the way a browser does: publishable key in the URL, simple request."""
    headers = {"HTTP_ORIGIN": origin or tenant.origin}
    joiner = "&" if "?" in query else "?"
    return Client().get(f"/v1/prices{query}{joiner}key={tenant.publishable_key}", **headers)


def daily_limit_off(tenant: Tenant) -> None:
    """A policy without the default daily change limit, for tests of a rule's full effect."""
    PricingPolicy.objects.update_or_create(retailer=tenant.retailer, defaults={"max_daily_change_percent": None})


def shards_run_all() -> int:
    """Run every pending shard in this process (what a worker does), returning SKUs changed."""
    pending = RepricingShard.objects.filter(status=RepricingShard.Status.PENDING).order_by("id")
    return sum(repricing_shard_run(shard_id=shard_id) for shard_id in pending.values_list("id", flat=True))


@pytest.fixture
def short_key_cache(settings: Any) -> None:
    """Let a test see retailer changes (pause) at once instead of after the key cache TTL."""
    settings.API_KEY_CACHE_TTL = 0
