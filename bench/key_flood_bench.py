"""Unknown-key flood: web memory and SQL while a client sends random ``pk_`` keys.

    python bench/key_flood_bench.py [--requests 200000] [--clients one|many|both] [--json-out F]

Starts gunicorn (the Procfile's web configuration, production settings, as
``prices_bench.py`` does) and sends ``--requests`` price lookups, each with a fresh random
publishable key, over keep-alive connections, in up to two phases:

  one   every request from one client (the socket's peer): the failed-authentication
        limit answers 429 after ``AUTH_FAILURES_PER_CLIENT_PER_MINUTE`` refusals a minute;
  many  every request from its own client (``TRUSTED_PROXY_COUNT=1`` and a random
        ``X-Forwarded-For``): each key costs its lookup, and the rejected-key cache fills
        to its bound (``API_KEY_REJECTED_CACHE_SIZE``) and stays there.

It reports the answers by status, the database transactions the web committed
(``pg_stat_database.xact_commit`` of the benchmark database, before and after), and the
resident memory of the gunicorn workers sampled every ``--sample-seconds``: first sample
(after ``--warmup`` requests), last, highest, and the growth from the first to the last.
A measurement, not a test: no targets, exit 0 unless the run could not be made.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import gunicorn_conf  # noqa: E402 - reads only the environment
from bench.loadgen import Connection  # noqa: E402
from bench.prices_bench import (  # noqa: E402
    Server,
    bench_env,
    database_ensure,
    free_port,
    manage,
)

PAGE_SIZE = 4096


class Flood:
    """The driver ``bench.loadgen.Connection`` reports to: answers counted by status."""

    def __init__(self, total: int, many_clients: bool) -> None:
        self.remaining = total
        self.many_clients = many_clients
        self.statuses: Counter[int] = Counter()
        self.errors = 0

    @property
    def done(self) -> int:
        return sum(self.statuses.values()) + self.errors

    def request(self) -> bytes:
        self.remaining -= 1
        forwarded = ""
        if self.many_clients:
            forwarded = (
                f"X-Forwarded-For: 10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(256)}\r\n"
            )
        return (
            f"GET /v1/prices/SKU-1?key=pk_{secrets.token_urlsafe(24)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Forwarded-Proto: https\r\n{forwarded}Accept: application/json\r\n\r\n"
        ).encode()

    def record(self, status: int, latency: float) -> None:
        self.statuses[status] += 1


def worker_pids(server: Server) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{server.process.pid}/task").glob("*"):
        try:
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(pids))


def workers_rss_mb(server: Server) -> float:
    """Resident memory of all gunicorn workers together, in MB."""
    total_kb = 0
    for pid in worker_pids(server):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total_kb += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return round(total_kb / 1024, 1)


def transactions(url: str) -> int:
    """Transactions committed in the benchmark database so far (statistics lag ~0.5 s)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


async def flood(server: Server, total: int, *, many: bool, connections: int, sample_seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    driver = Flood(total, many)
    conns = []
    for _ in range(connections):
        _, conn = await loop.create_connection(lambda: Connection(driver), "127.0.0.1", server.port)  # type: ignore[arg-type]
        await conn.ready
        conns.append(conn)
    samples: list[tuple[int, float]] = [(0, workers_rss_mb(server))]

    async def sampler() -> None:
        while True:
            await asyncio.sleep(sample_seconds)
            samples.append((driver.done, workers_rss_mb(server)))

    async def closed_loop(conn: Connection) -> None:
        while driver.remaining > 0 and not conn.transport.is_closing():  # type: ignore[union-attr]
            await conn.send(driver.request(), time.perf_counter())

    started = time.perf_counter()
    watcher = asyncio.create_task(sampler())
    await asyncio.gather(*(closed_loop(conn) for conn in conns))
    elapsed = time.perf_counter() - started
    watcher.cancel()
    for conn in conns:
        conn.transport.close()  # type: ignore[union-attr]
    samples.append((driver.done, workers_rss_mb(server)))
    rss = [mb for _, mb in samples]
    return {
        "requests": driver.done,
        "seconds": round(elapsed, 1),
        "rps": round(driver.done / elapsed, 1),
        "statuses": dict(sorted(driver.statuses.items())),
        "connection_errors": driver.errors,
        "rss_mb_first": rss[0],
        "rss_mb_last": rss[-1],
        "rss_mb_max": max(rss),
        "rss_mb_growth": round(rss[-1] - rss[0], 1),
        "rss_samples": samples,
    }


def phase(env: dict[str, str], options: argparse.Namespace, *, many: bool) -> dict[str, Any]:
    server_env = {**env, "TRUSTED_PROXY_COUNT": "1" if many else "0"}
    server = Server(server_env, free_port(), options.workers, options.threads)
    try:
        server.wait_ready()
        asyncio.run(flood(server, options.warmup, many=many, connections=options.connections, sample_seconds=1))
        time.sleep(1)
        before = transactions(env["DATABASE_URL"])
        result = asyncio.run(
            flood(
                server,
                options.requests,
                many=many,
                connections=options.connections,
                sample_seconds=options.sample_seconds,
            )
        )
        time.sleep(1)  # the statistics collector reports within about half a second
        result["db_transactions"] = transactions(env["DATABASE_URL"]) - before
        result["workers"] = len(worker_pids(server))
    finally:
        server.stop()
    return result


def report(name: str, result: dict[str, Any]) -> None:
    print(
        f"{name:<5} {result['requests']} requests in {result['seconds']} s ({result['rps']} req/s), "
        f"answers {result['statuses']}, connection errors {result['connection_errors']}"
    )
    print(
        f"      database transactions {result['db_transactions']} "
        f"({1000 * result['db_transactions'] / max(result['requests'], 1):.1f} per 1000 requests)"
    )
    print(
        f"      RSS of {result['workers']} workers: first {result['rss_mb_first']} MB, "
        f"last {result['rss_mb_last']} MB, max {result['rss_mb_max']} MB, growth {result['rss_mb_growth']} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200_000, help="Requests per phase.")
    parser.add_argument("--clients", choices=["one", "many", "both"], default="both")
    parser.add_argument("--warmup", type=int, default=2000, help="Unmeasured requests before the first sample.")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--sample-seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=gunicorn_conf.workers)
    parser.add_argument("--threads", type=int, default=gunicorn_conf.threads)
    parser.add_argument("--no-migrate", action="store_true", help="The database is migrated already.")
    parser.add_argument("--json-out", help="Also write the figures as JSON here.")
    options = parser.parse_args(argv)
    env = bench_env()
    if not options.no_migrate:
        database_ensure(env["DATABASE_URL"])
        manage(env, "migrate", "--noinput")
    phases = ["one", "many"] if options.clients == "both" else [options.clients]
    results = {name: phase(env, options, many=name == "many") for name in phases}
    for name, result in results.items():
        report(name, result)
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
