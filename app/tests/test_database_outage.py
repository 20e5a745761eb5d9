"""PostgreSQL away under load: prices keep coming from Redis, events keep being accepted
and are all counted once the database is back, nothing answers 500.

A private PostgreSQL (``initdb`` into a temporary folder, never the machine's shared one)
serves a real gunicorn and a real ingest worker. Two faults of 20 s each: the server
stopped (fast shutdown: sessions ended, connections refused) and the server hung
(``SIGSTOP`` of the postmaster and every backend: sockets open, nothing answers).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from workers.testing import (
    ROOT,
    PrivatePostgres,
    WebServer,
    celery_worker,
    private_postgres_server,
    subprocess_env,
    wait_until,
)

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("faults"), pytest.mark.timeout(120)]

OUTAGE_SECONDS = 20
BEFORE_SECONDS = 3
AFTER_SECONDS = 3
EVENTS_PER_BATCH = 5
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@pytest.fixture(scope="module")
def outage_database() -> Iterator[tuple[PrivatePostgres, str, dict[str, Any]]]:
    """A private PostgreSQL with the schema and one seeded retailer: (server, url, demo keys)."""
    with private_postgres_server() as server:
        url = server.create_database("storefabric_outage")
        env = subprocess_env({"DATABASE_URL": url})
        run = [sys.executable, "manage.py"]
        subprocess.run([*run, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
        with tempfile.TemporaryDirectory() as scratch:
            keys = Path(scratch) / "keys.json"
            seed = ["seed_demo", "--products", "24", "--rate-limit", "1000000000", "--keys-file", str(keys)]
            subprocess.run([*run, *seed], cwd=ROOT, env=env, check=True, capture_output=True)
            demo = json.loads(keys.read_text())[0]
        yield server, url, demo


class Load:
    """Price lookups, event batches and catalog reads from threads, until :meth:`stop`."""

    def __init__(self, web: WebServer, demo: dict[str, Any]) -> None:
        self.web, self.demo = web, demo
        self.prices: Counter[int | str] = Counter()
        self.events: Counter[int | str] = Counter()
        self.catalog: Counter[int | str] = Counter()
        self.accepted: list[str] = []
        self.accepted_during_outage = 0
        self.outage = False
        self.database_waits = 0
        self.catalog_refusals: list[tuple[str, str | None]] = []
        self._stop = threading.Event()
        loops = [self._prices, self._prices, self._events, self._catalog]
        self._threads = [threading.Thread(target=loop, daemon=True) for loop in loops]
        for thread in self._threads:
            thread.start()

    def _send(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int | str, bytes, str | None]:
        """(status, body, Retry-After); the status is an exception's name when no answer came."""
        request = urllib.request.Request(self.web.url + path, data=body, headers=headers or {})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # past DB_REQUEST_TIMEOUT  # noqa: S310 - http to 127.0.0.1
                return response.status, response.read(), response.headers.get("Retry-After")
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers.get("Retry-After")
        except OSError as error:  # a timeout or a refused connection: never acceptable here
            return type(error).__name__, b"", None

    def _prices(self) -> None:
        skus, key = self.demo["skus"], self.demo["publishable_key"]
        position = 0
        while not self._stop.is_set():
            position += 1
            status, _, _ = self._send(f"/v1/prices/{skus[position % len(skus)]}?key={key}")
            self.prices[status] += 1

    def _events(self) -> None:
        while not self._stop.is_set():
            ids = [str(uuid.uuid4()) for _ in range(EVENTS_PER_BATCH)]
            now = datetime.now(UTC).isoformat()
            batch = {"events": [{"id": i, "type": "page_view", "ts": now, "session": "s-outage"} for i in ids]}
            headers = {"Content-Type": "application/json", "User-Agent": BROWSER}
            during = self.outage
            path = f"/v1/events?key={self.demo['publishable_key']}"
            status, _, _ = self._send(path, json.dumps(batch).encode(), headers)
            self.events[status] += 1
            if status == 202:
                self.accepted += ids
                self.accepted_during_outage += int(during and self.outage)
            time.sleep(0.05)

    def _catalog(self) -> None:
        headers = {"Authorization": f"Bearer {self.demo['secret_key']}"}
        while not self._stop.is_set():
            status, body, retry_after = self._send("/v1/products", headers=headers)
            self.catalog[status] += 1
            if status == 503:
                self.catalog_refusals.append((body.decode(), retry_after))
            time.sleep(0.25)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def _counted(url: str, ids: list[str]) -> int:
    try:
        with psycopg.connect(url, connect_timeout=2) as connection:
            row = connection.execute("SELECT count(*) FROM analytics_rawevent WHERE event_id = ANY(%s::uuid[])", (ids,))
            return int(row.fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return -1


def _run_outage(
    outage_database: tuple[PrivatePostgres, str, dict[str, Any]],
    broker_redis: Any,
    fault: Callable[[PrivatePostgres], None],
    recover: Callable[[PrivatePostgres], None],
) -> Load:
    server, url, demo = outage_database
    # One load generator is one client: the per-client limit (off here) would refuse it, not the outage.
    env = {"DATABASE_URL": url, "RATE_LIMIT_PER_CLIENT_PER_MINUTE": "0"}
    web = WebServer(extra_env=env, threads=4)
    # No retries to spend: a wait for the database that counted as one would dead-letter the batch.
    worker_env = {**env, "CELERY_TASK_MAX_RETRIES": "0"}
    try:
        with celery_worker(["ingest"], concurrency=2, extra_env=worker_env) as worker:
            for sku in demo["skus"]:  # every snapshot in Redis, every key in the web's cache
                assert web.get(f"/v1/prices/{sku}?key={demo['publishable_key']}")[0] == 200
            load = Load(web, demo)
            try:
                time.sleep(BEFORE_SECONDS)
                load.outage = True
                fault(server)
                time.sleep(OUTAGE_SECONDS)
                recover(server)
                load.outage = False
                time.sleep(AFTER_SECONDS)
            finally:
                load.stop()
            wait_until(
                lambda: _counted(url, load.accepted) == len(load.accepted),
                timeout=45,
                interval=0.5,
                message=f"accepted events not all counted: {_counted(url, load.accepted)} of {len(load.accepted)}",
            )
            dead = worker.events("task_dead_lettered")
            assert dead == [], dead
            load.database_waits = len(worker.events("task_database_wait"))
            assert "Traceback" not in web.process.output(), web.process.output()[-3000:]
    finally:
        web.process.stop(timeout=5)
    print(f"prices {dict(load.prices)} events {dict(load.events)} catalog {dict(load.catalog)}")  # noqa: T201
    return load


def _assert_served(load: Load) -> None:
    total = sum(load.prices.values())
    assert total > 100, load.prices
    assert load.prices[200] >= 0.99 * total, load.prices
    for counts in (load.prices, load.events, load.catalog):
        assert not [status for status in counts if isinstance(status, int) and status >= 500 and status != 503], counts
    assert load.accepted_during_outage > 0, load.events  # the broker took batches while PostgreSQL was away
    assert set(load.events) == {202}, load.events
    assert all(isinstance(status, int) for status in load.catalog), load.catalog  # every request answered
    assert load.catalog_refusals, load.catalog  # the catalog answered the JSON 503 while the database was away
    body, retry_after = load.catalog_refusals[0]
    assert json.loads(body)["error"]["code"] == "database_unavailable"
    assert retry_after is not None
    assert int(retry_after) > 0


def test_postgres_stopped_for_20s_prices_and_events_go_on_and_every_accepted_event_is_counted(
    outage_database, broker_redis
) -> None:
    load = _run_outage(outage_database, broker_redis, lambda server: server.stop(), lambda server: server.start())
    _assert_served(load)
    assert load.database_waits > 0  # batches found the database away, and waited instead of retrying


def test_postgres_hung_for_20s_prices_and_events_go_on_and_every_accepted_event_is_counted(
    outage_database, broker_redis
) -> None:
    load = _run_outage(
        outage_database,
        broker_redis,
        lambda server: server.freeze(signal.SIGSTOP),
        lambda server: server.freeze(signal.SIGCONT),
    )
    _assert_served(load)


def test_a_key_revoked_before_the_outage_is_served_while_it_lasts_and_refused_once_the_database_answers(
    outage_database, broker_redis
) -> None:
    """The documented trade-off: with PostgreSQL away the last known key -> retailer mapping
    keeps prices up, even for a key revoked just before this process could read the change;
    the revocation takes effect as soon as the database answers again."""
    server, url, demo = outage_database
    key, sku = demo["publishable_key"], demo["skus"][0]
    price = f"/v1/prices/{sku}?key={key}"
    web = WebServer(extra_env={"DATABASE_URL": url, "RATE_LIMIT_PER_CLIENT_PER_MINUTE": "0"}, threads=2)
    revoke = "UPDATE tenancy_apikey SET revoked_at = %s WHERE publishable_value = %s"
    try:
        assert web.get(price)[0] == 200  # the key is in this process's cache
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(revoke, (datetime.now(UTC), key))
        server.stop()
        time.sleep(3)  # past API_KEY_CACHE_TTL (2 s): the process looks the key up again, and cannot
        during = Counter(web.get(price)[0] for _ in range(20))
        server.start()
        refused = wait_until(lambda: web.get(price)[0] == 401, timeout=30, message="revocation not applied")
    finally:
        web.process.stop(timeout=5)
        with psycopg.connect(url, autocommit=True) as connection:  # the module's other tests use the key
            connection.execute(revoke, (None, key))
    assert during == {200: 20}
    assert refused
