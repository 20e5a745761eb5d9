"""Redis unreachable: prices come from PostgreSQL marked stale, the limit fails open, never a 500."""

from __future__ import annotations

import time

import pytest

from app.redis_client import reset_for_tests
from app.tenancy.models import Retailer
from pricing.snapshots import snapshots_cache_resync
from pricing.tasks import snapshots_resync as snapshot_resync_task
from pricing.tests.conftest import prices_get, product_put

DEAD_REDIS = "redis://127.0.0.1:9/0"


@pytest.fixture
def redis_down(settings) -> None:
    settings.REDIS_URL = DEAD_REDIS
    reset_for_tests()
    yield
    reset_for_tests()


def test_prices_are_answered_from_postgres_marked_stale(alice, settings) -> None:
    product_put(alice, "A-1", base_price="12.00")
    settings.REDIS_URL = DEAD_REDIS
    reset_for_tests()
    single = prices_get(alice, "/A-1")
    assert single.status_code == 200
    assert single.json() == {"sku": "A-1", "price": "12.00", "currency": "USD", "stale": True}
    batch = prices_get(alice, "?skus=A-1,NOPE").json()
    assert batch["prices"][0]["stale"] is True
    assert batch["missing"] == ["NOPE"]
    assert prices_get(alice, "/NOPE").status_code == 404
    reset_for_tests()


def test_an_outage_costs_one_timeout_not_one_per_request(alice, redis_down) -> None:
    product_put(alice, "A-1")
    prices_get(alice, "/A-1")
    started = time.monotonic()
    for _ in range(20):
        assert prices_get(alice, "/A-1").status_code == 200
    assert time.monotonic() - started < 1.0


def test_rate_limit_fails_open_while_redis_is_away(alice, redis_down) -> None:
    Retailer.objects.filter(pk=alice.retailer.pk).update(rate_limit_per_minute=1)
    product_put(alice, "A-1")
    assert [prices_get(alice, "/A-1").status_code for _ in range(3)] == [200, 200, 200]


def test_writes_still_work_and_first_requests_are_priced(alice, redis_down) -> None:
    response = product_put(alice, "NEW-1", base_price="5.00")
    assert response.status_code == 201
    assert response.json()["price"]["price"] == "5.00"
    alice.client().post(
        "/v1/products/bulk", {"products": [{"sku": "NEW-2", "name": "n", "base_price": "6.00"}]}, format="json"
    )
    body = prices_get(alice, "/NEW-2").json()
    assert (body["price"], body["stale"]) == ("6.00", True)


@pytest.mark.django_db(transaction=True)
def test_a_copy_missed_while_redis_was_away_is_made_by_the_resync(alice, settings) -> None:
    product_put(alice, "A-1", base_price="10.00")
    assert prices_get(alice, "/A-1").json()["price"] == "10.00"
    live = settings.REDIS_URL
    settings.REDIS_URL = DEAD_REDIS
    reset_for_tests()
    assert product_put(alice, "A-1", base_price="12.00").status_code == 200
    settings.REDIS_URL = live
    reset_for_tests()
    assert prices_get(alice, "/A-1").json()["price"] == "10.00"  # the copy made before the outage
    assert snapshots_cache_resync() >= 1
    assert prices_get(alice, "/A-1").json()["price"] == "12.00"
    assert snapshots_cache_resync() >= 1  # overlap: recent copies are made again, harmlessly
    assert snapshot_resync_task.run(idempotency_key="beat") >= 0
