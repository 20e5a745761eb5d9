"""Worker benchmark: the reliable task against a bare Celery task, same worker, same run.

    python bench/workers_bench.py [--tasks 2000] [--rounds 2] [--relay-rows 5000] [--no-targets]

On PostgreSQL + Redis (``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL``; default a
``storefabric_bench`` database and Redis databases 12/13 on loopback). For each variant
the ``bench`` queue is filled with N messages at once (one pipelined write), and one
running ``celery worker -Q bench -c 2 --prefetch-multiplier=4`` (the Procfile's bulk
settings) drains it; the rate is timed from the first effect to the N-th, read from a
Redis counter every 5 ms:

  bare      ``@celery_app.task``: INCR a counter (the baseline)
  reliable  ``reliable_task``: delivery counter, structured log lines, metrics, and the
            INCR behind the Redis barrier (``redis_once``: claim + INCR in one script)
  reliable_db  the same with the database barrier (``db_once``: claim row + the INCR
            after commit), shown for comparison, no target

Best of ``--rounds``. Then the outbox relay: rows/s publishing N rows (in-process
``relay_batch``, default batch size). Target: reliable / bare >= 0.7; a miss exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/storefabric_bench",
    "REDIS_URL": "redis://127.0.0.1:6379/12",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
    "BROKER_CONFIG_CHECK": "warn",  # cache and broker are two databases of one server here
}
BENCH_QUEUE = "bench"
COUNTER = "sf:bench:effects"
TARGET = 0.7


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    for name, value in DEFAULTS.items():
        env.setdefault(name, value)
    env.update({"DJANGO_SETTINGS_MODULE": "app.settings", "DEBUG": "0", "PYTHONPATH": str(ROOT)})
    env.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    env.setdefault("BACKUP_ENCRYPTION_KEY", secrets.token_hex(32))  # required in production; unused here
    env.setdefault("SECURE_SSL_REDIRECT", "0")
    env.setdefault("LOG_FORMAT", "json")
    return env


if __name__ == "__main__":  # configure this process before Django is imported below
    os.environ.update(bench_env())
    sys.path.insert(0, str(ROOT))

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import transaction  # noqa: E402

from app.celery import celery_app  # noqa: E402
from workers.idempotency import db_once, redis_once  # noqa: E402
from workers.models import OutboxMessage  # noqa: E402
from workers.relay import OPEN, relay_batch  # noqa: E402
from workers.reliable import reliable_task  # noqa: E402
from workers.routing import Queue  # noqa: E402

_effects: redis.Redis | None = None


def effects() -> redis.Redis:
    """The cache Redis, where every variant's effect (one INCR) lands."""
    global _effects
    if _effects is None:
        _effects = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    return _effects


@celery_app.task(name="bench.bare", queue=BENCH_QUEUE)
def bare(*, idempotency_key: str) -> None:
    effects().incr(COUNTER)


@reliable_task(name="bench.reliable", queue=Queue.DEFAULT, soft_time_limit=10, time_limit=15)
def reliable(*, idempotency_key: str) -> None:
    redis_once(client=effects(), key=f"sf:bench:once:{idempotency_key}", commands=[["INCR", COUNTER]], ttl=600)


@reliable_task(name="bench.reliable_db", queue=Queue.DEFAULT, soft_time_limit=10, time_limit=15)
def reliable_db(*, idempotency_key: str) -> None:
    applied, _ = db_once(key=f"bench:{idempotency_key}", effect=lambda: True)
    if applied:
        effects().incr(COUNTER)


# Benchmark traffic stays off the real queues.
reliable.queue = BENCH_QUEUE
reliable_db.queue = BENCH_QUEUE
VARIANTS = {"bare": bare, "reliable": reliable, "reliable_db": reliable_db}


def database_ensure(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def fill(task: Any, count: int, run: str) -> None:
    """Publish ``count`` messages for ``task`` in pipelined batches (not timed)."""
    with celery_app.producer_or_acquire() as producer, producer.batch(max_size=1000):
        for number in range(count):
            task.apply_async(
                kwargs={"idempotency_key": f"{run}-{number}"}, queue=BENCH_QUEUE, producer=producer, retry=False
            )


class Worker:
    def __init__(self, concurrency: int, prefetch: int) -> None:
        self.log = Path(tempfile.mkstemp(prefix="sf-workers-bench-", suffix=".log")[1])
        args = [
            sys.executable, "-m", "celery", "-A", "app", "worker", "-Q", BENCH_QUEUE, "-c", str(concurrency),
            f"--prefetch-multiplier={prefetch}", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "-I", "bench.workers_bench",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING",
        ]  # fmt: skip
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(args, cwd=ROOT, env=bench_env(), stdout=output, stderr=output)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.unlink(missing_ok=True)


def drain(count: int, timeout: float = 600) -> float:
    """Effects per second while the running worker drains the filled queue: from its
    first effect to the ``count``-th, sampled every 5 ms."""
    client = effects()
    deadline = time.monotonic() + timeout
    first: float | None = None
    first_done = 0
    while time.monotonic() < deadline:
        done = int(client.get(COUNTER) or 0)
        now = time.monotonic()
        if first is None and done:
            first, first_done = now, done
        if done >= count and first is not None:
            return (done - first_done) / max(now - first, 1e-6)
        time.sleep(0.005)
    raise RuntimeError(f"{count} tasks not done in {timeout}s")


def purge_bench_queue() -> None:
    with celery_app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        channel.queue_purge(BENCH_QUEUE)


def measure_variant(name: str, count: int, round_number: int) -> float:
    effects().delete(COUNTER)
    fill(VARIANTS[name], count, f"{name}-{round_number}-{uuid.uuid4().hex[:6]}")
    return drain(count)


def warm_up(worker: Worker) -> None:
    """Wait until the worker runs tasks (its start is not part of any measurement)."""
    effects().delete(COUNTER)
    fill(bare, 1, f"warm-{uuid.uuid4().hex[:6]}")
    deadline = time.monotonic() + 120
    while not effects().get(COUNTER):
        if worker.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start: {worker.log.read_text()[-2000:]}")
        time.sleep(0.05)


def measure_relay(rows: int) -> float:
    """Outbox rows published per second by one in-process relay."""
    run = uuid.uuid4().hex[:8]
    # Rows another benchmark's seed left open in this (benchmark-only) database are not ours to time.
    OutboxMessage.objects.filter(status__in=OPEN).update(status=OutboxMessage.Status.DONE)
    OutboxMessage.objects.bulk_create(
        OutboxMessage(task_name="bench.reliable", kwargs={}, idempotency_key=f"relay-{run}-{number}")
        for number in range(rows)
    )
    started = time.monotonic()
    published = 0
    while count := relay_batch():
        published += count
    seconds = time.monotonic() - started
    ours = OutboxMessage.objects.filter(idempotency_key__startswith=f"relay-{run}-")
    sent = ours.filter(status=OutboxMessage.Status.SENT).count()
    with transaction.atomic():
        ours.delete()
    purge_bench_queue()
    if sent != rows or published != rows:
        raise RuntimeError(f"relay published {published} rows, {sent} of the {rows} it was given")
    return rows / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=2000, help="messages per variant and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the best rate of each variant is kept")
    parser.add_argument("--relay-rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--no-migrate", action="store_true", help="the database is migrated already")
    parser.add_argument("--no-targets", action="store_true", help="report only (the test suite's tiny run)")
    parser.add_argument("--json-out", help="also write the figures as JSON here")
    options = parser.parse_args(argv)
    if not options.no_migrate:
        database_ensure(os.environ["DATABASE_URL"])
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=bench_env(), check=True)
    best: dict[str, float] = {}
    purge_bench_queue()
    worker = Worker(options.concurrency, options.prefetch)
    try:
        warm_up(worker)
        for round_number in range(options.rounds):
            for name in VARIANTS:
                best[name] = max(best.get(name, 0.0), measure_variant(name, options.tasks, round_number))
    finally:
        worker.stop()
    relay_rate = measure_relay(options.relay_rows)
    summary = {
        "tasks": options.tasks,
        "rates": {name: round(rate, 1) for name, rate in best.items()},
        "ratios": {
            "reliable/bare": round(best["reliable"] / best["bare"], 3),
            "reliable_db/bare": round(best["reliable_db"] / best["bare"], 3),
        },
        "relay_rows_per_s": round(relay_rate, 1),
    }
    for name, rate in summary["rates"].items():
        print(f"{name:<12} {rate:>9.1f} tasks/s")
    print(f"reliable/bare    {summary['ratios']['reliable/bare']:.3f}  target >= {TARGET}")
    print(f"reliable_db/bare {summary['ratios']['reliable_db/bare']:.3f}  (database barrier, no target)")
    print(f"outbox relay {summary['relay_rows_per_s']:>9.1f} rows/s")
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(summary, indent=2))
    if not options.no_targets and summary["ratios"]["reliable/bare"] < TARGET:
        print("MISSED: reliable/bare below target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
