"""A cache Redis that answers errors (out of memory, read-only replica) is a Redis away: never a 5xx.

Each test runs a real gunicorn against a private cache Redis of its own (the shared one is
never reconfigured) and puts price lookups and event batches through it from several threads.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
import redis

from analytics.tests.factories import batch_body, event_json
from analytics.tests.probes import CHROME_UA
from app.redis_client import reset_for_tests
from conftest import Tenant
from pricing.tests.conftest import product_put
from workers.testing import PrivateRedis, WebServer, private_redis_server, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("faults"), pytest.mark.timeout(120)]

THREADS, ROUNDS = 4, 15


@pytest.fixture
def private_redis(transactional_db: None) -> Iterator[tuple[PrivateRedis, PrivateRedis]]:
    """Two private Redis servers: one to serve as the cache, one to be its primary (and committed
    data: gunicorn reads it, and snapshots are copied to Redis on commit)."""
    with ExitStack() as stack:
        yield stack.enter_context(private_redis_server()), stack.enter_context(private_redis_server())
    reset_for_tests()


def _cache_on(settings, server: PrivateRedis) -> None:
    """Point this test process's cache (product writes copy their snapshots there) at ``server``."""
    settings.REDIS_URL = server.url
    reset_for_tests()


def _request(web: WebServer, path: str, tenant: Tenant, body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Origin": tenant.origin, "User-Agent": CHROME_UA, "Content-Type": "text/plain;charset=UTF-8"}
    request = urllib.request.Request(web.url + path, data=body, headers=headers)  # noqa: S310 - http to 127.0.0.1
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _load(web: WebServer, tenant: Tenant) -> list[tuple[str, int, bytes]]:
    """Price lookups (cached, uncached, unknown SKUs, explained) and event batches, in parallel."""
    key = tenant.publishable_key
    paths = [
        f"/v1/prices/CACHED-1?key={key}",
        f"/v1/prices?skus=CACHED-1,CACHED-2,NOPE&key={key}",
        f"/v1/prices/UNCACHED-1?key={key}&explain=1",
        f"/v1/events?key={key}",
    ]

    def one(round_number: int) -> list[tuple[str, int, bytes]]:
        answers = []
        for path in paths:
            body = batch_body([event_json(sku="CACHED-1")]) if path.startswith("/v1/events") else None
            answers.append((path, *_request(web, path, tenant, body)))
        return answers

    with ThreadPoolExecutor(THREADS) as pool:
        return [answer for answers in pool.map(one, range(THREADS * ROUNDS)) for answer in answers]


def _catalog(tenant: Tenant, cache: PrivateRedis) -> None:
    """Two products copied to the cache, one only in PostgreSQL (its lookup writes the copy)."""
    for sku in ("CACHED-1", "CACHED-2", "UNCACHED-1"):
        assert product_put(tenant, sku, base_price="20.00").status_code == 201
    client = redis.Redis.from_url(cache.url)
    assert len(client.keys("*CACHED-*")) == 3
    client.delete(*client.keys("*UNCACHED-1*"))


def _assert_served(answers: list[tuple[str, int, bytes]]) -> None:
    statuses = sorted({(path.split("?")[0], status) for path, status, _ in answers})
    assert statuses == [
        ("/v1/events", 202),
        ("/v1/prices", 200),
        ("/v1/prices/CACHED-1", 200),
        ("/v1/prices/UNCACHED-1", 200),
    ], [answer for answer in answers if answer[1] >= 500][:3]
    assert all(b'"price":"20.00"' in body for path, _, body in answers if "CACHED-1" in path.split("&")[0])


def test_a_cache_redis_out_of_memory_under_noeviction_fails_no_request(
    alice, broker_redis, settings, private_redis
) -> None:
    cache, _ = private_redis
    _cache_on(settings, cache)
    _catalog(alice, cache)
    web = WebServer(extra_env={"REDIS_URL": cache.url})
    try:
        redis.Redis.from_url(cache.url).config_set("maxmemory", 1)  # every write: OOM command not allowed
        answers = _load(web, alice)
    finally:
        web.process.stop(graceful=False)
    _assert_served(answers)


def test_a_cache_redis_that_became_a_read_only_replica_fails_no_request(
    alice, broker_redis, settings, private_redis
) -> None:
    replica, primary = private_redis
    _cache_on(settings, primary)
    _catalog(alice, primary)
    client = redis.Redis.from_url(replica.url)
    for side in (client, redis.Redis.from_url(primary.url)):  # the full sync writes no RDB file, which
        side.config_set("repl-diskless-sync", "yes")  # the next server started here would load
        side.config_set("repl-diskless-load", "on-empty-db")
    client.replicaof("127.0.0.1", primary.port)
    wait_until(lambda: client.info("replication")["master_link_status"] == "up", timeout=20, message="no sync")
    wait_until(lambda: len(client.keys("*CACHED-*")) == 2, timeout=10, message="copies not replicated")
    web = WebServer(extra_env={"REDIS_URL": replica.url})
    try:
        answers = _load(web, alice)  # every write: READONLY You can't write against a read only replica
    finally:
        web.process.stop(graceful=False)
    _assert_served(answers)
