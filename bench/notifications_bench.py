"""Notifications benchmark: the whole webhook and email paths against bare loops, same run.

    python bench/notifications_bench.py [--events 1000] [--rounds 3] [--rate-events 300] [--emails 300] [--no-targets]

On PostgreSQL + Redis (``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL``; defaults as
``bench/workers_bench.py``). The retailer's endpoint is a local HTTP server on 127.0.0.1
answering 200 at once (``WEBHOOK_ALLOWED_NETWORKS=127.0.0.1/32``); SMTP is aiosmtpd on
127.0.0.1. Real processes: one ``manage.py outbox_relay`` and one ``celery worker -Q
email,webhooks -c 4`` (``worker_notify``'s queues and prefetch, 1: the dispatch of notified
topics runs there too), and ``celery beat`` (the sweeps). The bare loops run in a process of
their own too (forked), not beside the servers' threads in this one, where each round trip
waited on the GIL (until 2026-12-04 they ran here, which made them slower by up to half).

  (a) webhook deliveries/s through the whole path — ``--events`` outbox rows committed at
      once → relay → dispatcher (fan-out) → signed POST → attempt row — timed from
      the commit to the last attempt row, against a bare loop of signed POSTs with the same
      client library (``http.client``, one kept-alive connection, as ours keeps one per slot;
      a connection per POST on both sides before 2026-12-04) and none of our code;
      also reported from the start of the business transaction that writes the outbox rows
      (``*_with_outbox_writes``: ~1 ms an insert, which a bare loop has no counterpart of).
      ``--rounds`` paired rounds, bare loop then ours; the ratio is the median of the rounds'
      (single rounds of the bare loop alone moved 565-992 POSTs/s on the idle machine);
  (b) the p99 time from a business commit to the endpoint receiving its first attempt, at
      100 events/s (``--rate-events`` events, one transaction each);
  (c) email sends/s through the queue to aiosmtpd against a bare ``smtplib`` loop (one
      connection for all its messages, as each of our worker processes keeps one open):
      ``--emails`` notification rows committed at once → drains published after the commit →
      claimed in batches, rendered, sent, each recorded ``sent`` → the server's last accept;
      timed from the commit as (a), and from the start of the transaction writing the rows;
      ``--rounds`` paired rounds, bare loop then ours, median ratio.

Targets: (a) >= 0.5 x bare, (b) p99 <= 1 s, (c) >= 0.5 x bare; a miss exits 1.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import logging
import multiprocessing
import os
import secrets
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 0.5
TARGET_P99_SECONDS = 1.0

if __name__ == "__main__":  # configure this process before Django is imported below
    from bench.notify_env import bench_environment_set

    bench_environment_set()

import django  # noqa: E402

django.setup()

from aiosmtpd.controller import Controller  # noqa: E402
from django.db import transaction  # noqa: E402

from app.tenancy.services import retailer_create  # noqa: E402
from bench.notify_env import bench_database_prepare  # noqa: E402
from notifications.envelope import event_public_id  # noqa: E402
from notifications.models import DeliveryAttempt, EmailNotification  # noqa: E402
from notifications.services.email import NewNotification, notifications_enqueue  # noqa: E402
from notifications.services.endpoints import endpoint_create  # noqa: E402
from workers.outbox import outbox_announce  # noqa: E402

received: dict[str, float] = {}  # webhook-id → first arrival
received_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint's server
    disable_nagle_algorithm = True  # as such servers do: its header and body writes would wait on our delayed ACK

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with received_lock:
            received.setdefault(self.headers.get("webhook-id", ""), time.time())
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.count += 1
        return "250 OK"


def start(args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    """Start a process logging to a file (a pipe drained by this busy process would block its writes)."""
    log = Path(tempfile.mkdtemp()) / "output.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while ready not in log.read_text(errors="replace"):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"{args[1:5]} did not start: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)
    return process


def wait_for(predicate: Any, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's work did not finish")
        time.sleep(0.02)
    return time.monotonic()


def announce(retailer_id: int, key: str) -> str:
    outbox_announce(topic="prices.changed", payload={"retailer_id": retailer_id, "skus": []}, key=key, version=1)
    return event_public_id(topic="prices.changed", key=key, version=1)


def whole_path(retailer_id: int, count: int, run: str) -> tuple[float, float]:
    """Deliveries/s from the business commit to the last attempt row (what the target is
    about), and from the start of the business transaction writing the outbox rows."""
    before = DeliveryAttempt.objects.count()
    started = time.monotonic()
    with transaction.atomic():
        for n in range(count):
            announce(retailer_id, f"{run}:bulk:{n}")
    committed = time.monotonic()
    done = wait_for(lambda: DeliveryAttempt.objects.count() - before >= count)
    return count / (done - committed), count / (done - started)


def in_own_process(loop: Any, *args: Any) -> float:
    """Run a bare loop in a process of its own (forked: it needs nothing but its arguments),
    as our workers are: in this process it would share the GIL with the servers' threads,
    and every round trip would wait for the interpreter's switch interval."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return float(pool.apply(loop, args))


def bare_posts(url_port: int, count: int) -> float:
    key = secrets.token_bytes(24)
    body = b'{"id":"msg_x","type":"prices.changed","data":{"skus":[]}}'
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", url_port, timeout=15)  # kept alive, as ours per slot
    for n in range(count):
        stamp = str(int(time.time()))
        signature = base64.b64encode(hmac.new(key, f"msg_{n}.{stamp}.".encode() + body, hashlib.sha256).digest())
        connection.request(
            "POST",
            "/bare",
            body,
            {
                "webhook-id": f"bare_{n}",
                "webhook-timestamp": stamp,
                "webhook-signature": "v1," + signature.decode(),
                "Content-Type": "application/json",
            },
        )
        connection.getresponse().read(4096)
    connection.close()
    return count / (time.monotonic() - started)


def commit_to_first_attempt(retailer_id: int, count: int, run: str) -> list[float]:
    committed: dict[str, float] = {}
    for n in range(count):
        tick = time.monotonic()
        with transaction.atomic():
            message_id = announce(retailer_id, f"{run}:paced:{n}")
        committed[message_id] = time.time()
        time.sleep(max(0.0, 0.01 - (time.monotonic() - tick)))
    wait_for(lambda: all(message_id in received for message_id in committed))
    return sorted(received[message_id] - moment for message_id, moment in committed.items())


def emails_through_queue(retailer_id: int, sink: Sink, count: int, run: str) -> tuple[float, float]:
    """Sends/s from the business commit to the server's last accept, and from the start of
    the business transaction writing the notification rows (as (a))."""
    before = sink.count
    started = time.monotonic()
    with transaction.atomic():
        notifications_enqueue(
            [
                NewNotification(retailer_id, f"ops{n}@bench.example", "backup.completed", f"{run}:email:{n}")
                for n in range(count)
            ]
        )
    committed = time.monotonic()
    done = wait_for(lambda: sink.count - before >= count)
    sent = EmailNotification.objects.filter(dedup_key__startswith=f"{run}:email:", state="sent")
    wait_for(lambda: sent.count() == count, timeout=10)  # the last accepts' commits may trail the server
    return count / (done - committed), count / (done - started)


def bare_smtp(port: int, count: int) -> float:
    """What a competent loop with the same client library does: one connection for every
    message (ours reuses its worker process's connection since cdd3ac7, so the loop that
    opened one per message, as Django's backend did per ``send()``, is no longer the
    baseline to beat)."""
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        for n in range(count):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "bench@storefabric.dev", f"b{n}@bench.example", "bench"
            message.set_content("Your backup is complete.")
            client.send_message(message)
    return count / (time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds of (a): bare loop, then ours")
    parser.add_argument("--rate-events", type=int, default=300)
    parser.add_argument("--emails", type=int, default=300)
    parser.add_argument("--no-migrate", action="store_true")
    parser.add_argument("--no-targets", action="store_true")
    options = parser.parse_args(argv)
    env = dict(os.environ)
    if not options.no_migrate:
        bench_database_prepare()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    sink = Sink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
    smtpd = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    smtpd.start()
    env["EMAIL_PORT"] = str(smtp_port)
    run = secrets.token_hex(4)
    retailer, _, _ = retailer_create(name=f"Bench {run}", origins=[], actor="bench")
    endpoint_create(
        retailer=retailer, url=f"http://127.0.0.1:{httpd.server_address[1]}/hook", event_types=["prices.changed"]
    )
    processes = [
        start([sys.executable, "manage.py", "outbox_relay"], env, "outbox_relay_started"),
        # beat runs the 2 s sweep that hands postponed deliveries (endpoint at its concurrency) back
        start(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "app",
                "beat",
                "--schedule",
                str(Path(tempfile.mkdtemp()) / "beat-schedule"),
            ],
            env,
            "beat: Starting",
        ),
        start(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "app",
                "worker",
                "-Q",
                "email,webhooks",
                "-c",
                "4",
                "--prefetch-multiplier=1",
                "-n",
                f"bench-{run}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            env,
            " ready.",
        ),
    ]
    try:
        whole_path(retailer.pk, 20, run + "w")  # warm up the pool processes' connections
        rounds = []
        for number in range(options.rounds):
            bare_round = in_own_process(bare_posts, httpd.server_address[1], options.events)
            rounds.append((bare_round, *whole_path(retailer.pk, options.events, f"{run}r{number}")))
        latencies = commit_to_first_attempt(retailer.pk, options.rate_events, run)
        email_rounds = []
        for number in range(options.rounds):
            email_bare = in_own_process(bare_smtp, smtp_port, options.emails)
            ours = emails_through_queue(retailer.pk, sink, options.emails, f"{run}e{number}")
            email_rounds.append((email_bare, *ours))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        smtpd.stop()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    webhook_ratio = statistics.median(ours / bare for bare, ours, _ in rounds)
    summary: dict[str, Any] = {
        "webhook_rounds": [
            {"bare_per_s": round(bare, 1), "ours_per_s": round(ours, 1), "ratio": round(ours / bare, 3)}
            for bare, ours, _ in rounds
        ],
        "webhook_ratio": round(webhook_ratio, 3),
        "webhook_ratio_with_outbox_writes": round(statistics.median(writes / bare for bare, _, writes in rounds), 3),
        "commit_to_first_attempt_p50_s": round(latencies[len(latencies) // 2], 3),
        "commit_to_first_attempt_p99_s": round(p99, 3),
        "email_rounds": [
            {"bare_per_s": round(bare, 1), "ours_per_s": round(ours, 1), "ratio": round(ours / bare, 3)}
            for bare, ours, _ in email_rounds
        ],
        "email_ratio": round(statistics.median(ours / bare for bare, ours, _ in email_rounds), 3),
        "email_ratio_with_row_writes": round(statistics.median(writes / bare for bare, _, writes in email_rounds), 3),
    }
    print(json.dumps(summary, indent=2))
    missed = [
        name
        for name, ok in (
            ("webhook_ratio", webhook_ratio >= TARGET_RATIO),
            ("commit_to_first_attempt_p99_s", p99 <= TARGET_P99_SECONDS),
            ("email_ratio", summary["email_ratio"] >= TARGET_RATIO),
        )
        if not ok
    ]
    if missed and not options.no_targets:
        print("MISSED: " + ", ".join(missed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
