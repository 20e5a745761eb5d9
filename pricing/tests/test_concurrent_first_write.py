"""Parallel first writes of a SKU that does not exist yet: every one answers, the product is created once.

Each writer is a thread with its own PostgreSQL connection (Django's connections are
per thread), released together by a barrier, against the real database: locking a row
that does not exist locks nothing, so the race is on the unique index.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from app.tenancy.models import AuditEntry
from conftest import Tenant
from pricing.models import PriceSnapshot, Product

WRITERS = 8


def _write_in_parallel(tenant: Tenant, sku: str) -> list[int]:
    barrier = threading.Barrier(WRITERS)
    statuses: list[int] = []

    def write(inventory: int) -> None:
        client = tenant.client()
        client.raise_request_exception = False  # a unique violation must show as the 500 it would be
        body = {"name": "New shoe", "base_price": "10.00", "inventory": inventory}
        try:
            barrier.wait(timeout=30)
            statuses.append(client.put(f"/v1/products/{sku}", body, format="json").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(inventory,)) for inventory in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


@pytest.mark.django_db(transaction=True)
def test_parallel_first_writes_create_the_product_once_and_update_it_after(alice: Tenant) -> None:
    statuses = _write_in_parallel(alice, "NEW-SKU")

    assert sorted(statuses) == [200] * (WRITERS - 1) + [201]
    product = Product.objects.get(retailer=alice.retailer, sku="NEW-SKU")
    assert product.inventory in range(WRITERS)
    actions = sorted(AuditEntry.objects.filter(entity="product", entity_id="NEW-SKU").values_list("action", flat=True))
    assert actions == ["create"] + ["update"] * (WRITERS - 1)
    assert PriceSnapshot.objects.filter(retailer=alice.retailer, sku="NEW-SKU").count() == 1
