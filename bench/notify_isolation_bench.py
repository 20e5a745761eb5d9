"""Isolation benchmark: slow webhook deliveries do not slow ingestion's drain.

    python bench/notify_isolation_bench.py [--batches 1000] [--slow 50] [--delay 5] [--no-targets]

On PostgreSQL + Redis (``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL``; defaults as
``bench/notifications_bench.py``). The Procfile's ``worker_bulk`` (``ingest``) and
``worker_notify`` (``email``, ``webhooks``) run as the Procfile starts them (autoscaled),
with one outbox relay.

Three drains of ``--batches`` batches of 20 events, each published to ``ingest`` as the events
API publishes one (``events_ingest_batch``), timed from the first publish to the last event
counted in PostgreSQL: (a) alone, (b) while ``--slow`` webhook deliveries to endpoints that
answer after ``--delay`` s are in flight (one ``prices.changed`` event to each of 5 retailers
with ``--slow`` / 5 endpoints each, announced through the outbox just before the batches),
(a') alone again once the slow deliveries are done, so a drift of the machine shows.
Target: (b) <= 1.2 x the mean of (a) and (a'); a miss exits 1.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SLOWDOWN = 1.2
RETAILERS = 5
EVENTS_PER_BATCH = 20

if __name__ == "__main__":  # configure this process before Django is imported below
    from bench.notify_env import bench_environment_set

    bench_environment_set()

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402

from analytics.models import RawEvent  # noqa: E402
from analytics.tasks import events_ingest_batch  # noqa: E402
from app.tenancy.services import retailer_create  # noqa: E402
from bench.notify_env import bench_database_prepare  # noqa: E402
from notifications.models import Delivery  # noqa: E402
from notifications.services.endpoints import endpoint_create  # noqa: E402
from workers.outbox import outbox_announce  # noqa: E402
from workers.testing import ManagedProcess, start_outbox_relay, start_procfile_worker, wait_until  # noqa: E402


class SlowEndpoint(BaseHTTPRequestHandler):
    delay = 5.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(self.delay)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


def batch_text(count: int) -> str:
    now = datetime.now(UTC).isoformat()
    events = [
        {"id": str(uuid.uuid4()), "type": "product_view", "sku": f"SKU-{n % 50}", "ts": now, "session": "s-1"}
        for n in range(count)
    ]
    return json.dumps({"events": events})


def drain(retailer_id: int, batches: int) -> float:
    """Publish ``batches`` batches as the API does; seconds until every event is counted."""
    before = RawEvent.objects.filter(retailer_id=retailer_id).count()
    bodies = [batch_text(EVENTS_PER_BATCH) for _ in range(batches)]
    started = time.monotonic()
    for body in bodies:
        events_ingest_batch.enqueue(
            idempotency_key=f"events:{uuid.uuid4().hex}",
            retailer_id=retailer_id,
            batch=body,
            received_at=datetime.now(UTC).isoformat(),
        )
    total = before + batches * EVENTS_PER_BATCH
    wait_until(lambda: RawEvent.objects.filter(retailer_id=retailer_id).count() >= total, timeout=600, interval=0.05)
    return time.monotonic() - started


def slow_deliveries_start(run: str, url: str, slow: int) -> list[int]:
    """One event to each of ``RETAILERS`` retailers with ``slow / RETAILERS`` slow endpoints each."""
    retailer_ids = []
    for number in range(RETAILERS):
        retailer, _, _ = retailer_create(name=f"Slow {run} {number}", origins=[], actor="bench")
        for endpoint in range(slow // RETAILERS):
            endpoint_create(retailer=retailer, url=f"{url}/slow/{endpoint}", event_types=["prices.changed"])
        retailer_ids.append(retailer.pk)
    with transaction.atomic():
        for retailer_id in retailer_ids:
            payload = {"retailer_id": retailer_id, "skus": []}
            outbox_announce(topic="prices.changed", payload=payload, key=f"{run}:slow:{retailer_id}", version=1)
    return retailer_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=50)
    parser.add_argument("--delay", type=float, default=5.0)
    parser.add_argument("--no-migrate", action="store_true")
    parser.add_argument("--no-targets", action="store_true")
    options = parser.parse_args(argv)
    if not options.no_migrate:
        bench_database_prepare()
    SlowEndpoint.delay = options.delay
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowEndpoint)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    run = secrets.token_hex(4)
    retailer, _, _ = retailer_create(name=f"Ingest {run}", origins=[], actor="bench")
    processes: list[ManagedProcess] = [
        start_procfile_worker("worker_bulk"),
        start_procfile_worker("worker_notify"),
        start_outbox_relay(),
    ]
    try:
        drain(retailer.pk, 50)  # warm up the pool processes' connections
        alone = drain(retailer.pk, options.batches)
        slow_retailers = slow_deliveries_start(run, url, options.slow)
        in_flight = Delivery.objects.filter(endpoint__retailer_id__in=slow_retailers, state=Delivery.State.SENDING)
        wait_until(lambda: in_flight.exists(), timeout=30, interval=0.02)
        beside_slow = drain(retailer.pk, options.batches)
        unfinished = Delivery.objects.filter(
            endpoint__retailer_id__in=slow_retailers, state__in=(Delivery.State.SENDING, Delivery.State.PENDING)
        )
        slow_still_in_flight = unfinished.count()
        wait_until(lambda: not unfinished.exists(), timeout=300, interval=0.2)  # (a') alone, really
        alone_again = drain(retailer.pk, options.batches)
    finally:
        for process in processes:
            process.stop()
        httpd.shutdown()
    baseline = (alone + alone_again) / 2
    summary = {
        "batches": options.batches,
        "slow_deliveries": options.slow,
        "drain_alone_s": round(alone, 2),
        "drain_beside_slow_deliveries_s": round(beside_slow, 2),
        "drain_alone_again_s": round(alone_again, 2),
        "slow_deliveries_unfinished_at_drain_end": slow_still_in_flight,
        "slowdown": round(beside_slow / baseline, 3),
    }
    print(json.dumps(summary, indent=2))
    if summary["slowdown"] > TARGET_SLOWDOWN and not options.no_targets:
        print(f"MISSED: slowdown {summary['slowdown']} > {TARGET_SLOWDOWN}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
