"""Redis unreachable: prices come from PostgreSQL marked stale, the limit fails open, never a 500."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

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


REQUESTS = 20


class BlackHole:
    """A TCP server that accepts every connection and never answers: a Redis that hangs.

    Unlike a refused port, each attempt costs the client its full socket timeout, and
    every attempt is counted, so a test can assert how many were made.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # how often the thread looks at the stop flag
        self.port: int = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self._accepted.append(self._listener.accept()[0])
            except TimeoutError:
                continue

    def connections(self) -> int:
        """Stop accepting, take the connections still queued in the kernel; how many were made."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self._listener.setblocking(False)
            while True:
                try:
                    self._accepted.append(self._listener.accept()[0])
                except BlockingIOError:
                    break
        return len(self._accepted)

    def close(self) -> None:
        self.connections()
        for connection in [*self._accepted, self._listener]:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()
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


def test_an_outage_costs_one_timeout_not_one_per_request(alice, settings, black_hole) -> None:
    product_put(alice, "A-1", base_price="12.00")
    settings.REDIS_BREAKER_COOLDOWN = 3600  # no probe during the test: every attempt after the first is a bug
    settings.REDIS_URL = f"redis://127.0.0.1:{black_hole.port}/0"
    reset_for_tests()

    answers = [prices_get(alice, "/A-1") for _ in range(REQUESTS)]

    assert [(a.status_code, a.json()["price"], a.json()["stale"]) for a in answers] == [(200, "12.00", True)] * REQUESTS
    assert black_hole.connections() == 1  # one request waited for the timeout; the breaker answered the rest


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
