"""Price API benchmark: the hot path against a bare Django view, same gunicorn, same run.

    python bench/prices_bench.py [--duration 4] [--rounds 5] [--no-targets]

Starts gunicorn (app/gunicorn_conf.py, as the Procfile's web line) with the production settings on
PostgreSQL + Redis (``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL``, default
a ``storefabric_bench`` database and Redis databases 14/15 on loopback), seeds the
demo retailer, and measures with a publishable key and an allowed ``Origin``:

  (a) ``/bench/bare`` — a ``JsonResponse`` view, no middleware, no database (baseline)
  (b) ``GET /v1/prices/{sku}``
  (c) ``GET /v1/prices?skus=`` with 12 SKUs

requests/s and p50/p99 at peak (closed loop, short slices of a, b, c in rotating
order; medians of the slices and of the per-round ratios), then p99 of (b) at half
its peak rate (open loop), with the server's and the load generator's CPU. Targets on our 2-core
machine: b/a >= 0.6, c/a >= 0.45, p99(b at half peak) < 20 ms; a miss exits 1.

The load comes from 10,000 shoppers, each with its own client address and visitor id: the
web runs with ``TRUSTED_PROXY_COUNT=1`` and every request carries its shopper's address in
``X-Forwarded-For`` (``bench.loadgen --shoppers``), so the per-client rate limit
(``RATE_LIMIT_PER_CLIENT_PER_MINUTE``, on as in production) sees shoppers, not one client.

    python bench/prices_bench.py --client-limits [--rounds 15]

measures the per-client limit's cost instead: two gunicorns of the same configuration, one
with the per-client limit on and one with it off (``RATE_LIMIT_PER_CLIENT_PER_MINUTE=0``),
loaded with (b) in alternating slices, same run; the median of the per-round on/off ratios
of requests/s must be >= 0.95. ``--control`` runs the same rounds with the limit off on both
(an A/A run): its spread is the method's own noise.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import gunicorn_conf  # noqa: E402 - reads only the environment
from app.gunicorn_conf import GUNICORN_CONFIG  # noqa: E402

DEFAULTS = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/storefabric_bench",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
    "BROKER_CONFIG_CHECK": "warn",  # cache and broker are two databases of one server here
}
TARGETS = {"b/a": 0.6, "c/a": 0.45, "p99_b_half_ms": 20.0}
CLIENT_LIMITS_TARGET = 0.95
# A/A runs (--control) swing single rounds from 0.48 to 1.95 on our 2-core machine: the median of
# 7 (the least the issue asks) landed anywhere in 0.93-1.01 for the same code, of 15 in 0.96-0.97.
CLIENT_LIMITS_ROUNDS = 15
SKUS_PER_PAGE = 12
SHOPPERS = 10_000  # client address / visitor pairs: request n of a set is sent as shopper n
TICKS = os.sysconf("SC_CLK_TCK")


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    for name, value in DEFAULTS.items():
        env.setdefault(name, value)
    env.update({"DJANGO_SETTINGS_MODULE": "app.settings", "DEBUG": "0", "PYTHONPATH": str(ROOT)})
    env["TRUSTED_PROXY_COUNT"] = "1"  # the load generator is the proxy: it forwards each shopper's address
    env.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    env.setdefault("BACKUP_ENCRYPTION_KEY", secrets.token_hex(32))  # required in production; unused here
    env.setdefault("METRICS_TOKEN", secrets.token_urlsafe(16))
    return env


def database_ensure(url: str) -> None:
    """Create the benchmark database when it does not exist yet."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def demo_seeded(env: dict[str, str], *, products: int, migrate: bool) -> dict[str, Any]:
    """The demo retailer with ``products`` products and no practical per-key limit: its keys,
    SKUs and origin (the database migrated first, unless ``migrate`` is off)."""
    if migrate:
        database_ensure(env["DATABASE_URL"])
        manage(env, "migrate", "--noinput")
    with tempfile.TemporaryDirectory() as scratch:
        keys_file = Path(scratch) / "keys.json"
        seed = ["seed_demo", "--products", str(products), "--rate-limit", "1000000000", "--keys-file", str(keys_file)]
        manage(env, *seed)
        demo: dict[str, Any] = json.loads(keys_file.read_text())[0]
    return demo


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_request(path: str, origin: str) -> str:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}\r\n"
        "X-Forwarded-Proto: https\r\nAccept: application/json\r\n\r\n"
    )


def request_sets(demo: dict[str, Any]) -> dict[str, list[str]]:
    """The requests of a, b and c; those of b and c one per shopper, each with its own visitor."""
    key, origin, skus = demo["publishable_key"], demo["origin"], demo["skus"]
    pages = [skus[start : start + SKUS_PER_PAGE] for start in range(0, len(skus) - SKUS_PER_PAGE + 1, SKUS_PER_PAGE)]
    singles, pages = skus[:200], pages[:50]
    return {
        "a": [http_request("/bench/bare", origin)],
        "b": [
            http_request(f"/v1/prices/{singles[n % len(singles)]}?key={key}&visitor=v{n}", origin)
            for n in range(SHOPPERS)
        ],
        "c": [
            http_request(f"/v1/prices?skus={','.join(pages[n % len(pages)])}&key={key}&visitor=v{n}", origin)
            for n in range(SHOPPERS)
        ],
    }


class Server:
    """gunicorn with production's configuration (app/gunicorn_conf.py, as the Procfile's web line),
    serving bench.wsgi (the app + the baseline)."""

    def __init__(self, env: dict[str, str], port: int, workers: int, threads: int) -> None:
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix="sf-bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
        args = [
            sys.executable, "-m", "gunicorn", "bench.wsgi:application", "--config", GUNICORN_CONFIG,
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
            "--no-control-socket",
        ]  # fmt: skip
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120.0) -> None:  # workers import Django slowly on a busy machine
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(http_request("/healthz", "http://127.0.0.1").encode())
                    if b" 200 " in connection.recv(200):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not ready in {timeout}s; see {self.log.name}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the master and its workers so far."""
        pids = [self.process.pid]
        for task in Path(f"/proc/{self.process.pid}/task").glob("*"):
            try:
                pids += [int(pid) for pid in (task / "children").read_text().split()]
            except OSError:
                continue
        total = 0
        for pid in set(pids):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / TICKS

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def redis_cpu_seconds() -> float:
    """User + system CPU of the cache Redis server so far (``INFO cpu``)."""
    import redis

    info = redis.Redis.from_url(os.environ.get("REDIS_URL", DEFAULTS["REDIS_URL"])).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def load(server: Server, requests: list[str], *, duration: float, connections: int, rate: float = 0.0) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(requests, handle)
    cpu_before, redis_before = server.cpu_seconds(), redis_cpu_seconds()
    args = [sys.executable, "-m", "bench.loadgen", "--port", str(server.port), "--requests-file", handle.name]
    args += ["--duration", str(duration), "--connections", str(connections), "--rate", str(rate)]
    args += ["--shoppers", str(SHOPPERS)]
    output = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    Path(handle.name).unlink()
    result: dict[str, Any] = json.loads(output)
    result["server_cpu_s"] = round(server.cpu_seconds() - cpu_before, 3)
    result["redis_cpu_s"] = round(redis_cpu_seconds() - redis_before, 3)
    return result


def median_row(rows: list[dict[str, Any]], field: str) -> dict[str, Any]:
    return sorted(rows, key=lambda row: row[field])[len(rows) // 2]


def paired_rounds(
    server: Server,
    sets: dict[str, list[str]],
    options: argparse.Namespace,
    *,
    allow_errors: bool = False,
    after_slice: Callable[[str], None] | None = None,
    servers: dict[str, Server] | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, float]]]:
    """Slices of ``options.duration`` of every set in rotating order, ``options.rounds`` times:
    the slices by set, and each round's requests/s by set (``servers`` sends a set to a
    server of its own instead of ``server``).

    Other processes on a shared machine slow every slice of a round alike, so the
    median of ratios paired by round moves far less than a ratio of two long runs.
    """
    names = list(sets)
    slices: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    per_round: list[dict[str, float]] = []
    for round_index in range(options.rounds):
        shift = round_index % len(names)
        got: dict[str, float] = {}
        for name in names[shift:] + names[:shift]:
            target = (servers or {}).get(name, server)
            result = load(target, sets[name], duration=options.duration, connections=options.connections)
            if result["errors"] and not allow_errors:
                raise RuntimeError(f"{name}: {result['errors']} requests failed")
            if after_slice is not None:
                after_slice(name)
            slices[name].append(result)
            got[name] = result["rps"]
        per_round.append(got)
    return slices, per_round


def measure(server: Server, sets: dict[str, list[str]], options: argparse.Namespace) -> dict[str, Any]:
    """Paired rounds of a, b and c at peak (medians kept), then b at half its peak rate."""
    for requests in sets.values() if options.warmup else ():  # connections, key cache, Redis copies
        load(server, requests, duration=options.warmup, connections=options.connections)
    slices, per_round = paired_rounds(server, sets, options, allow_errors=options.no_targets)
    paired = {ratio: [got[ratio[0]] / got["a"] if got["a"] else 0.0 for got in per_round] for ratio in ("b/a", "c/a")}
    peak = {name: median_row(rows, "rps") for name, rows in slices.items()}
    half_rate = max(1.0, peak["b"]["rps"] / 2)
    halves = [
        load(server, sets["b"], duration=options.duration, connections=options.connections, rate=half_rate)
        for _ in range(options.rounds)
    ]
    half = {**median_row(halves, "p99_ms"), "rate": round(half_rate, 1)}
    ratios = {name: round(statistics.median_high(values), 3) for name, values in paired.items()}
    ratios["p99_b_half_ms"] = half["p99_ms"]
    return {"peak": peak, "b_at_half_peak": half, "ratios": ratios, "paired_ratios": paired}


def measure_client_limits(servers: dict[str, Server], sets: dict[str, list[str]], options: argparse.Namespace) -> dict:
    """(b) in paired rounds against the server with the per-client limit on and the one with it off."""
    pair = dict.fromkeys(servers, sets["b"])
    for name in pair if options.warmup else ():
        load(servers[name], pair[name], duration=options.warmup, connections=options.connections)
    slices, per_round = paired_rounds(servers["on"], pair, options, allow_errors=options.no_targets, servers=servers)
    ratios = [got["on"] / got["off"] if got["off"] else 0.0 for got in per_round]
    peak = {name: median_row(rows, "rps") for name, rows in slices.items()}
    cpu_us = {
        name: {
            part: round(1e6 * sum(r[f"{part}_cpu_s"] for r in rows) / max(1, sum(r["requests"] for r in rows)), 1)
            for part in ("server", "redis")
        }
        for name, rows in slices.items()
    }
    return {
        "peak": peak,
        "cpu_us_per_request": cpu_us,
        "per_round": per_round,
        "paired_ratios": {"on/off": ratios},
        "ratios": {"on/off": round(statistics.median_high(ratios), 3)},
        "control": options.control,
    }


def report_client_limits(summary: dict[str, Any]) -> None:
    header = f"{'(b) /v1/prices/{sku}':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    print(f"{header}{'web cpu us/req':>16}{'redis cpu us/req':>18}{'errors':>8}")
    for name in ("on", "off"):
        row, cpu = summary["peak"][name], summary["cpu_us_per_request"][name]
        label = f"per-client limit {name}"
        print(
            f"{label:<28}{row['rps']:>10.1f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{cpu['server']:>16.1f}{cpu['redis']:>18.1f}{row['errors']:>8}"
        )
    print(f"on/off per round: {', '.join(f'{value:.3f}' for value in summary['paired_ratios']['on/off'])}")
    print(f"load average of the machine (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    control = "  (control run: the limit is off on both)" if summary["control"] else ""
    print(f"{'on/off':<16}{summary['ratios']['on/off']:>8}  target >= {CLIENT_LIMITS_TARGET}{control}")


def report(summary: dict[str, Any]) -> None:
    labels = {"a": "(a) bare JsonResponse", "b": "(b) /v1/prices/{sku}", "c": "(c) /v1/prices?skus= x12"}
    print(f"{'endpoint':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'server cpu':>12}{'client cpu':>12}{'errors':>8}")
    for name, label in labels.items():
        row = summary["peak"][name]
        print(
            f"{label:<28}{row['rps']:>10.1f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['server_cpu_s']:>11.2f}s{row['client_cpu_s']:>11.2f}s{row['errors']:>8}"
        )
    half = summary["b_at_half_peak"]
    print(f"(b) at half peak ({half['rate']} req/s): p50 {half['p50_ms']:.2f} ms, p99 {half['p99_ms']:.2f} ms")
    for name, values in summary["paired_ratios"].items():
        print(f"{name} per round: {', '.join(f'{value:.2f}' for value in values)}")
    print(f"load average of the machine (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, value in summary["ratios"].items():
        print(f"{name:<16}{value:>8}  target {'<' if name.startswith('p99') else '>='} {TARGETS[name]}")


def targets_missed(ratios: dict[str, float]) -> list[str]:
    missed = [name for name in ("b/a", "c/a") if ratios[name] < TARGETS[name]]
    if ratios["p99_b_half_ms"] >= TARGETS["p99_b_half_ms"]:
        missed.append("p99_b_half_ms")
    return missed


def run_client_limits(env: dict[str, str], demo: dict[str, Any], options: argparse.Namespace) -> dict[str, Any]:
    """Start the two gunicorns (limit on as configured, limit off) side by side and measure them."""
    off = {**env, "RATE_LIMIT_PER_CLIENT_PER_MINUTE": "0"}
    envs = {"on": off if options.control else env, "off": off}
    servers: dict[str, Server] = {}
    try:
        for name, server_env in envs.items():
            servers[name] = Server(server_env, free_port(), options.workers, options.threads)
        for server in servers.values():
            server.wait_ready()
        return measure_client_limits(servers, request_sets(demo), options)
    finally:
        for server in servers.values():
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="Seconds per slice.")
    parser.add_argument(
        "--rounds", type=int, help=f"Rounds of slices (medians are reported); 5, or {CLIENT_LIMITS_ROUNDS} pairs."
    )
    parser.add_argument(
        "--client-limits", action="store_true", help="Measure (b) with the per-client limit on against off."
    )
    parser.add_argument(
        "--control", action="store_true", help="With --client-limits: the limit off on both servers (A/A)."
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0, help="Seconds of unmeasured load per endpoint first.")
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=gunicorn_conf.workers)
    parser.add_argument("--threads", type=int, default=gunicorn_conf.threads)
    parser.add_argument("--no-migrate", action="store_true", help="The database is migrated already.")
    parser.add_argument("--no-targets", action="store_true", help="Report only (the test suite's tiny run).")
    parser.add_argument("--json-out", help="Also write the figures as JSON here.")
    options = parser.parse_args(argv)
    if options.rounds is None:
        options.rounds = CLIENT_LIMITS_ROUNDS if options.client_limits else 5
    env = bench_env()
    demo = demo_seeded(env, products=max(options.products, SKUS_PER_PAGE), migrate=not options.no_migrate)
    if options.client_limits:
        summary = run_client_limits(env, demo, options)
        report_client_limits(summary)
        missed = [] if summary["ratios"]["on/off"] >= CLIENT_LIMITS_TARGET else ["on/off"]
    else:
        server = Server(env, free_port(), options.workers, options.threads)
        try:
            server.wait_ready()
            summary = measure(server, request_sets(demo), options)
        finally:
            server.stop()
        report(summary)
        missed = targets_missed(summary["ratios"])
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(summary, indent=2))
    missed = [] if options.no_targets else missed
    if missed:
        print(f"MISSED: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
