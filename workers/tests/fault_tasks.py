"""Tasks used only by the workers tests; worker subprocesses load them with ``include``.

The effect is the product's own: one product view of SKU ``key`` (event id derived from
the key) stored and counted by the production events insert (``analytics.services.
events_ingest``), whose barrier is the raw events' unique (retailer, event id). So a
fault test's counts prove what the product does: ``applied`` reads the per-minute
counters per key, a duplicate shows as 2 and a loss as a missing key. (``unguarded_apply``,
a bare counter row, is only for the tests of the generic barriers in ``workers.idempotency``.)
Every run of a body (before its barrier) adds one to the ``executions`` hash in the cache
Redis, and a run of a redelivered message to ``redelivered``: together they show that
work was repeated.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from analytics.services.ingest import events_ingest
from analytics.tests.factories import event_row
from app.tenancy.models import Retailer
from workers.broker import broker_redis
from workers.errors import PermanentError, TransientError
from workers.outbox import outbox_subscriber
from workers.reliable import reliable_task
from workers.routing import Queue

MODULE = __name__
EFFECT_TABLE = "workers_test_effect"
EXECUTIONS = "sf:test:executions"
REDELIVERED = "sf:test:redelivered"
FIXED = "sf:test:fixed"
THING_CHANGED = "test.thing_changed"
RUNNING = "sf:test:running"

_client: redis.Redis | None = None


def patient_redis() -> redis.Redis:
    """The cache Redis, with patient timeouts (the app's own client gives up after 50 ms)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    return _client


def _count(name: str, key: str) -> None:
    patient_redis().hincrby(name, key, 1)


def counts_raw(name: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in patient_redis().hgetall(name).items()}


def counts(name: str) -> dict[str, int]:
    return {key: int(value) for key, value in counts_raw(name).items()}


def _seen(task: object, key: str) -> None:
    _count(EXECUTIONS, key)
    request = task.request  # type: ignore[attr-defined]
    if request.get("redelivered") or (request.delivery_info or {}).get("redelivered"):
        _count(REDELIVERED, key)


EFFECTS_RETAILER = "fault-test-effects"


def effects_retailer_id() -> int:
    return int(Retailer.objects.only("pk").get(name=EFFECTS_RETAILER).pk)


def _apply(key: str) -> None:
    """The production effect: count one product view of SKU ``key``, exactly once per key."""
    received = timezone.now()
    row = event_row(sku=key, ts=received, event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, key)))
    events_ingest(retailer_id=effects_retailer_id(), rows=[row], received_at=received)


def unguarded_apply(key: str) -> None:
    """A bare counter row, no barrier of its own: what the generic barriers' tests guard."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EFFECT_TABLE} (key, applied) VALUES (%s, 1) "  # noqa: S608 - constant table name
            f"ON CONFLICT (key) DO UPDATE SET applied = {EFFECT_TABLE}.applied + 1",
            [key],
        )


BACKENDS = "sf:test:backends"


@reliable_task(name="workers_tests.database_backend", queue=Queue.DEFAULT, soft_time_limit=10, time_limit=15)
def database_backend(*, idempotency_key: str) -> None:
    """Record which PostgreSQL backend (server process) served this run."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        patient_redis().hset(BACKENDS, idempotency_key, cursor.fetchone()[0])


@reliable_task(name="workers_tests.record", queue=Queue.DEFAULT, soft_time_limit=10, time_limit=15)
def record(*, idempotency_key: str) -> None:
    _count(EXECUTIONS, idempotency_key)


@reliable_task(name="workers_tests.increment", queue=Queue.DEFAULT, soft_time_limit=70, time_limit=75)
def increment(*, idempotency_key: str, sleep_ms: int = 0, retailer_id: int | None = None) -> None:
    """The effect of the fault tests: one increment per key, behind the database barrier.

    While it runs, ``RUNNING`` maps its process id to its key, so a test can kill a
    process that is certainly in the middle of a task.
    """
    _seen(increment, idempotency_key)
    patient_redis().hset(RUNNING, str(os.getpid()), idempotency_key)
    if sleep_ms:
        time.sleep(sleep_ms / 1000)
    _apply(idempotency_key)
    patient_redis().hdel(RUNNING, str(os.getpid()))


@reliable_task(
    name="workers_tests.flaky",
    queue=Queue.DEFAULT,
    soft_time_limit=10,
    time_limit=15,
    backoff_base=0.3,
    backoff_cap=5.0,
    backoff_jitter=lambda: 1.0,
)
def flaky(*, idempotency_key: str, failures: int) -> None:
    """Fails with a transient error ``failures`` times, then applies its effect."""
    _seen(flaky, idempotency_key)
    if counts(EXECUTIONS)[idempotency_key] <= failures:
        raise TransientError("remote answered 503")
    _apply(idempotency_key)


@reliable_task(
    name="workers_tests.fills_the_broker",
    queue=Queue.DEFAULT,
    soft_time_limit=10,
    time_limit=15,
    backoff_base=0.1,
    backoff_cap=0.1,
)
def fills_the_broker(*, idempotency_key: str) -> None:
    """First run: the broker Redis reaches its memory limit (``maxmemory`` 1 byte, ``noeviction``),
    so it refuses the retry's publish (OOM) while it still takes deletions (the ack); then
    fails transiently. Later runs apply the effect."""
    _seen(fills_the_broker, idempotency_key)
    if counts(EXECUTIONS)[idempotency_key] == 1:
        broker_redis().config_set("maxmemory", "1")
        raise TransientError("remote answered 503")
    _apply(idempotency_key)


@reliable_task(
    name="workers_tests.broken_until_fixed",
    queue=Queue.DEFAULT,
    soft_time_limit=10,
    time_limit=15,
    max_retries=2,
    backoff_base=0.1,
    backoff_cap=0.5,
)
def broken_until_fixed(*, idempotency_key: str) -> None:
    """Fails (transient) until the test sets its key in ``FIXED``; then applies its effect once."""
    _seen(broken_until_fixed, idempotency_key)
    if not patient_redis().sismember(FIXED, idempotency_key):
        raise TransientError("dependency still down")
    _apply(idempotency_key)


@reliable_task(name="workers_tests.rejects_input", queue=Queue.DEFAULT, soft_time_limit=10, time_limit=15)
def rejects_input(*, idempotency_key: str, retailer_id: int | None = None) -> None:
    _seen(rejects_input, idempotency_key)
    raise PermanentError("remote answered 400: bad sku")


@reliable_task(name="workers_tests.poison", queue=Queue.DEFAULT, soft_time_limit=10, time_limit=15)
def poison(*, idempotency_key: str) -> None:
    """Kills its own worker process, every time (a segfaulting C extension, an OOM kill)."""
    _seen(poison, idempotency_key)
    os.kill(os.getpid(), signal.SIGKILL)


@reliable_task(name="workers_tests.hangs", queue=Queue.DEFAULT, soft_time_limit=1, time_limit=2)
def hangs(*, idempotency_key: str) -> None:
    """Ignores its soft time limit (a C call that never returns); the hard limit kills it."""
    _seen(hangs, idempotency_key)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:  # noqa: BLE001, S112 - swallows SoftTimeLimitExceeded on purpose
            continue


@outbox_subscriber(THING_CHANGED)
def thing_changed_apply(event: dict[str, object]) -> None:
    """A subscriber: its effect commits with the dispatcher's "done" mark."""
    _apply(f"{event['key']}@{event['version']}")
