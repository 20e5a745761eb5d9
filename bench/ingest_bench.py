"""Ingestion benchmark: the events API and the ingest worker against bare baselines, same run.

    python bench/ingest_bench.py [--duration 6] [--batches 400] [--bare-tasks 2000] [--no-targets]

On PostgreSQL + Redis (``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL``; defaults as
``bench/prices_bench.py``), with batches of 50 events throughout:

  (a) API: ``POST /v1/events`` (text/plain, 50 events) under gunicorn (the Procfile's web
      settings), accepted events/s, against the bare Django view's requests/s (the same
      POST to ``/bench/bare``, no middleware) measured by the same load generator, in short
      slices of both in rotating order (the median of the per-round ratios is kept);
  (b) worker: one ``celery worker -Q ingest -c 4`` (the Procfile's bulk worker at its autoscale
      ceiling, where a backlog takes it, with its prefetch) draining
      a queue of batches posted through the API: processed events/s (counted in PostgreSQL),
      against the same worker draining a trivial task on the same base (tasks/s). Rates
      are timed from the worker's own log: first task started to last task finished,
      plus the run time of the demand refreshes the batches asked for that ran after it
      (the drain ends once no SKU is left marked).
      The bench retailer's events and counts are deleted first, so every run starts alike:
      its SKUs are cold (signal 1.0000), pushed to pricing once, then unchanged.

As in ``bench/prices_bench.py``, the web runs with ``TRUSTED_PROXY_COUNT=1`` and every
request comes from one of 10,000 shoppers (its own ``X-Forwarded-For`` address), so the
per-client rate limit counts shoppers, not the load generator.

Targets: processed events/s >= 10 x bare tasks/s; API events/s >= 20 x bare requests/s.
A miss exits 1 (``--no-targets``: report only, the test suite's tiny run).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import gunicorn_conf  # noqa: E402 - reads only the environment
from bench.prices_bench import (  # noqa: E402
    SHOPPERS,
    Server,
    bench_env,
    demo_seeded,
    free_port,
    load,
    median_row,
    paired_rounds,
)
from loadtests.identities import shopper_address  # noqa: E402

EVENTS_PER_BATCH = 50
TARGETS = {"processed_vs_bare_task": 10.0, "api_events_vs_bare_view": 20.0}
TYPES = ["product_view"] * 7 + ["page_view", "add_to_cart", "purchase"]
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
INGEST_TASK = "analytics.events_ingest_batch"
REFRESH_TASK = "analytics.demand_refresh_marked"
BARE_TASK = "bench.ingest_bare"


def batch_body(skus: list[str], number: int) -> str:
    """50 fresh events (unique ids) over the catalog, as the insert sends them."""
    now = datetime.now(UTC).isoformat()
    events = []
    for index in range(EVENTS_PER_BATCH):
        kind = TYPES[(number + index) % len(TYPES)]
        event: dict[str, Any] = {"id": str(uuid.uuid4()), "type": kind, "ts": now, "session": f"s{number % 97}"}
        if kind != "page_view":
            event["sku"] = skus[(number * EVENTS_PER_BATCH + index) % len(skus)]
        if kind == "purchase":
            event.update(quantity=1, price="19.99")
        events.append(event)
    return json.dumps({"events": events}, separators=(",", ":"))


def post_request(path: str, body: str, origin: str) -> str:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}\r\nUser-Agent: {BROWSER_UA}\r\n"
        f"X-Forwarded-Proto: https\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n\r\n"
        f"{body}"
    )


def broker_client(env: dict[str, str]) -> Any:
    import redis

    return redis.Redis.from_url(env["CELERY_BROKER_URL"])


def measure_api(server: Server, demo: dict[str, Any], options: argparse.Namespace) -> dict[str, Any]:
    """(a): paired rounds of the bare view and the events API, same load generator; medians kept.

    The accepted batches are thrown away unrun after each slice (queue and publish journal),
    so the broker Redis does not grow by a few hundred MB per slice and slow the next one.
    """
    origin, key, skus = demo["origin"], demo["publishable_key"], demo["skus"]
    bodies = [batch_body(skus, number) for number in range(200)]
    sets = {
        "bare": [post_request("/bench/bare", body, origin) for body in bodies[:20]],
        "api": [post_request(f"/v1/events?key={key}", body, origin) for body in bodies],
    }
    broker = broker_client(bench_env())

    def discard_batches(_: str) -> None:
        broker.delete("ingest", "sf:journal", "sf:journal:published")

    for requests in sets.values():
        load(server, requests, duration=min(1.0, options.duration), connections=options.connections)
    slices, per_round = paired_rounds(server, sets, options, after_slice=discard_batches)
    per_round_ratios = [got["api"] * EVENTS_PER_BATCH / got["bare"] for got in per_round]
    result: dict[str, Any] = {name: median_row(rows, "rps") for name, rows in slices.items()}
    result["api"]["events_per_s"] = round(result["api"]["rps"] * EVENTS_PER_BATCH, 1)
    result["ratio"] = round(statistics.median_high(per_round_ratios), 2)
    result["ratio_per_round"] = [round(ratio, 2) for ratio in per_round_ratios]
    return result


def post_batches(port: int, demo: dict[str, Any], batches: int) -> None:
    """Fill the ingest queue with ``batches`` fresh batches through the API."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": demo["origin"], "User-Agent": BROWSER_UA}
    headers["X-Forwarded-Proto"] = "https"
    for number in range(batches):
        forwarded = {**headers, "X-Forwarded-For": shopper_address(number % SHOPPERS)}
        connection.request(
            "POST", f"/v1/events?key={demo['publishable_key']}", batch_body(demo["skus"], number), forwarded
        )
        response = connection.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"batch {number}: HTTP {response.status}")
    connection.close()


def publish_bare(count: int) -> None:
    """Fill the ingest queue with ``count`` trivial tasks (this process is configured as the app)."""
    import django

    django.setup()
    from bench.ingest_bare_task import ingest_bare

    for number in range(count):
        ingest_bare.enqueue(idempotency_key=f"bench-bare-{number}")


class Worker:
    """``celery -A app worker -Q ingest -c N`` with the Procfile's bulk prefetch, logging JSON."""

    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        self.log = Path(tempfile.mkstemp(prefix="sf-bench-worker-", suffix=".log")[1])
        args = [
            sys.executable, "-m", "celery", "-A", "app", "worker", "-Q", "ingest", "-c", str(concurrency),
            "--prefetch-multiplier=4", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "-I", "bench.ingest_bare_task",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
        ]  # fmt: skip
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                args,
                cwd=ROOT,
                env={**env, "LOG_FORMAT": "json", "CELERY_SOFT_SHUTDOWN_TIMEOUT": "0"},
                stdout=output,
                stderr=output,
            )

    def finished(self, *tasks: str) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and any(f'"{task}"' in line for task in tasks):
                event = json.loads(line)
                if event.get("task") in tasks and event.get("event") in ("task_started", "task_succeeded"):
                    lines.append(event)
        return lines

    def drain_seconds(
        self, task: str, count: int, timeout: float, *, then: str | None = None, settled: Any = None
    ) -> float:
        """Seconds from the first start to the ``count``-th success of ``task`` — or, with
        ``then``, to the last success of that follow-up task once ``settled()`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited; see {self.log}")
            done = [e for e in self.finished(task) if e["event"] == "task_succeeded"]
            if len(done) >= count and (settled is None or settled()):
                events = self.finished(task)
                moments = sorted(_moment(e) for e in events)
                # A follow-up that ran after the last task counts with its run time, not with the
                # wait before it (a demand refresh runs a second after its window opens).
                late = [e for e in self.finished(then) if e["event"] == "task_succeeded"] if then else []
                tail = sum(e.get("duration_ms", 0.0) for e in late if _moment(e) > moments[-1]) / 1000
                return (moments[-1] - moments[0]).total_seconds() + tail
            time.sleep(0.2)
        raise RuntimeError(f"{task}: {count} tasks not done in {timeout}s; see {self.log}")

    def stop(self) -> None:
        """Warm shutdown; the queue is drained, so there is nothing to wait for (soft shutdown is off)."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        self.log.unlink(missing_ok=True)


def bulk_autoscale_max() -> int:
    """The bulk worker's autoscale ceiling by default (``--autoscale=${BULK_MAX:-N},…`` in the Procfile)."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker_bulk:"))
    found = re.search(r"--autoscale=\$\{BULK_MAX:-(\d+)\}", line)
    if found is None:
        raise RuntimeError("the Procfile's worker_bulk line has no --autoscale=${BULK_MAX:-N},…")
    return int(found.group(1))


def analytics_reset(env: dict[str, str], retailer_id: int) -> None:
    """Start every run from the same state: no stored events, counts or demand budgets for the
    bench retailer (budgets outlive a run by two hours: each run's would make the next one's
    budget index bigger)."""
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as connection:
        for table in ("analytics_rawevent", "analytics_skuminutecount", "analytics_demandusage"):
            connection.execute(f"DELETE FROM {table} WHERE retailer_id = %s", (retailer_id,))  # noqa: S608


def _moment(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))


def demand_marks(env: dict[str, str], retailer_id: int) -> int:
    """SKUs of the retailer still waiting for their demand refresh."""
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as connection:
        row = connection.execute(
            "SELECT count(*) FROM analytics_demandmark WHERE retailer_id = %s", (retailer_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def counted_events(env: dict[str, str]) -> int:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as connection:
        row = connection.execute(
            "SELECT COALESCE(SUM(page_view + product_view + add_to_cart + purchase), 0) FROM analytics_skuminutecount"
        ).fetchone()
    return int(row[0]) if row else 0


def measure_worker(env: dict[str, str], port: int, demo: dict[str, Any], options: argparse.Namespace) -> dict:
    """(b): the bare task's tasks/s, then processed events/s, on the same worker configuration."""
    broker = broker_client(env)
    # The API measurement's batches are thrown away unrun: their queue and their publish-journal
    # entries (workers.journal) both, or the journal keeps every batch of every run.
    broker.delete("ingest", "sf:journal", "sf:journal:published")
    publish_bare(options.bare_tasks)
    worker = Worker(env, options.concurrency)
    try:
        bare_seconds = worker.drain_seconds(BARE_TASK, options.bare_tasks, timeout=300)
    finally:
        worker.stop()
    before = counted_events(env)
    post_batches(port, demo, options.batches)
    worker = Worker(env, options.concurrency)
    try:
        ingest_seconds = worker.drain_seconds(
            INGEST_TASK,
            options.batches,
            timeout=600,
            then=REFRESH_TASK,  # the demand refreshes the batches asked for are part of the work
            settled=lambda: demand_marks(env, demo["retailer_id"]) == 0 and not broker.hlen("unacked"),
        )
    finally:
        worker.stop()
    processed = counted_events(env) - before
    expected = options.batches * EVENTS_PER_BATCH
    if processed != expected:
        raise RuntimeError(f"counted {processed} events, expected {expected}")
    return {
        "bare_tasks": options.bare_tasks,
        "bare_seconds": round(bare_seconds, 3),
        "bare_tasks_per_s": round(options.bare_tasks / bare_seconds, 1),
        "batches": options.batches,
        "events": processed,
        "ingest_seconds": round(ingest_seconds, 3),
        "batches_per_s": round(options.batches / ingest_seconds, 1),
        "events_per_s": round(processed / ingest_seconds, 1),
    }


def report(summary: dict[str, Any]) -> None:
    api, worker, ratios = summary["api"], summary["worker"], summary["ratios"]
    print(f"(a) bare view       {api['bare']['rps']:>10.1f} req/s   p50 {api['bare']['p50_ms']:.2f} ms")
    print(
        f"(a) POST /v1/events {api['api']['rps']:>10.1f} req/s   p50 {api['api']['p50_ms']:.2f} ms  "
        f"= {api['api']['events_per_s']:.0f} events/s"
    )
    print(f"(a) API events/s over bare req/s per round: {', '.join(map(str, api['ratio_per_round']))}")
    print(f"(b) bare task       {worker['bare_tasks_per_s']:>10.1f} tasks/s ({worker['bare_tasks']} tasks)")
    print(
        f"(b) ingest          {worker['batches_per_s']:>10.1f} batches/s = {worker['events_per_s']:.0f} events/s "
        f"({worker['events']} events counted)"
    )
    for name, value in ratios.items():
        print(f"{name:<26}{value:>8}  target >= {TARGETS[name]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="Seconds per API slice.")
    parser.add_argument("--rounds", type=int, default=5, help="Paired rounds of API slices (medians are reported).")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--batches", type=int, default=1000, help="Batches of 50 events drained by the worker.")
    parser.add_argument("--bare-tasks", type=int, default=2000, help="Trivial tasks drained by the worker.")
    parser.add_argument(
        "--concurrency", type=int, default=bulk_autoscale_max(), help="Ingest worker processes (Procfile's ceiling)."
    )
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--workers", type=int, default=gunicorn_conf.workers)
    parser.add_argument("--threads", type=int, default=gunicorn_conf.threads)
    parser.add_argument("--no-migrate", action="store_true", help="The database is migrated already.")
    parser.add_argument("--no-targets", action="store_true", help="Report only (the test suite's tiny run).")
    parser.add_argument("--json-out", help="Also write the figures as JSON here.")
    options = parser.parse_args(argv)
    env = bench_env()
    os.environ.update(env)
    demo = demo_seeded(env, products=options.products, migrate=not options.no_migrate)
    analytics_reset(env, demo["retailer_id"])
    server = Server(env, free_port(), options.workers, options.threads)
    try:
        server.wait_ready()
        api = measure_api(server, demo, options)
        worker = measure_worker(env, server.port, demo, options)
    finally:
        server.stop()
        broker_client(env).delete("ingest")
    summary = {
        "api": api,
        "worker": worker,
        "ratios": {
            "processed_vs_bare_task": round(worker["events_per_s"] / worker["bare_tasks_per_s"], 2),
            "api_events_vs_bare_view": api["ratio"],
        },
    }
    report(summary)
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(summary, indent=2))
    missed = [] if options.no_targets else [n for n, v in summary["ratios"].items() if v < TARGETS[n]]
    if missed:
        print(f"MISSED: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
