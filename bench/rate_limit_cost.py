"""What the per-client rate limit costs a price lookup in CPU, without a web server's noise.

    python bench/rate_limit_cost.py [--requests 2000] [--rounds 10] [--no-migrate]

Calls (b) of ``bench/prices_bench.py`` (``GET /v1/prices/{sku}``, 10,000 shoppers, each with its
own ``X-Forwarded-For`` and visitor, ``TRUSTED_PROXY_COUNT=1``) through the production WSGI
application in this process, in blocks of ``--requests``: the per-client limit on (as
configured) and off (``RATE_LIMIT_PER_CLIENT_PER_MINUTE=0``) in alternating order, ``--rounds``
blocks of each. Reports the medians of each one's CPU a request, this process's and the cache
Redis's (``INFO cpu``), and what the limit adds. A measurement, no targets: on our 2-core
machine other processes swing ``prices_bench.py --client-limits`` slices by tens of per cent,
while CPU time a request hardly moves with them; this isolates what the limit itself costs
(in-process there is no gunicorn, so the same cost is a larger share of the request here).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.prices_bench import SHOPPERS, bench_env, demo_seeded, redis_cpu_seconds  # noqa: E402
from loadtests.identities import shopper_address  # noqa: E402

MODES = {"on": None, "off": 0}  # RATE_LIMIT_PER_CLIENT_PER_MINUTE: as configured, or off


def wsgi_environ(path: str, query: str, origin: str, shopper: int) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1", "HTTP_ORIGIN": origin, "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_ACCEPT": "application/json", "HTTP_X_FORWARDED_FOR": shopper_address(shopper),
        "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
    }  # fmt: skip


def lookups(demo: dict[str, Any]) -> list[dict[str, Any]]:
    """One environ a shopper, as ``prices_bench.request_sets`` builds (b)."""
    singles = demo["skus"][:200]
    return [
        wsgi_environ(f"/v1/prices/{singles[n % len(singles)]}", f"key={demo['publishable_key']}&visitor=v{n}",
                     demo["origin"], n)
        for n in range(SHOPPERS)
    ]  # fmt: skip


def measure(application: Callable, environs: list[dict[str, Any]], options: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings

    configured = settings.RATE_LIMIT_PER_CLIENT_PER_MINUTE
    statuses: dict[str, int] = {}

    def start_response(status: str, _headers: list) -> None:
        statuses[status] = statuses.get(status, 0) + 1

    def block(mode: str, offset: int) -> dict[str, float]:
        limit = MODES[mode]
        settings.RATE_LIMIT_PER_CLIENT_PER_MINUTE = configured if limit is None else limit
        cpu, redis = time.process_time(), redis_cpu_seconds()
        for n in range(options.requests):
            environ = {**environs[(offset + n) % len(environs)], "wsgi.input": io.BytesIO(b"")}
            b"".join(application(environ, start_response))
        return {
            "web_us": 1e6 * (time.process_time() - cpu) / options.requests,
            "redis_us": 1e6 * (redis_cpu_seconds() - redis) / options.requests,
        }

    for mode in MODES:  # unmeasured: connections, the key cache, Python's caches
        block(mode, 0)
    blocks: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for round_index in range(options.rounds):
        order = list(MODES) if round_index % 2 == 0 else list(reversed(MODES))
        for mode in order:
            blocks[mode].append(block(mode, round_index * options.requests))
    settings.RATE_LIMIT_PER_CLIENT_PER_MINUTE = configured
    medians = {
        mode: {part: round(statistics.median(row[part] for row in rows), 1) for part in ("web_us", "redis_us")}
        for mode, rows in blocks.items()
    }
    total = {mode: row["web_us"] + row["redis_us"] for mode, row in medians.items()}
    return {
        "per_request": medians,
        "limit_adds_us": round(total["on"] - total["off"], 1),
        "per_client_limit": configured,
        "statuses": statuses,
    }


def report(summary: dict[str, Any]) -> None:
    print(f"{'(b) in process':<26}{'web cpu us/req':>16}{'redis cpu us/req':>18}{'total':>8}")
    for mode, row in summary["per_request"].items():
        label = f"per-client limit {mode}"
        print(f"{label:<26}{row['web_us']:>16.1f}{row['redis_us']:>18.1f}{row['web_us'] + row['redis_us']:>8.1f}")
    print(f"the limit ({summary['per_client_limit']}/min a client) adds {summary['limit_adds_us']} us of CPU a lookup")
    print(f"answers: {summary['statuses']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="Lookups a block.")
    parser.add_argument("--rounds", type=int, default=10, help="Blocks of each, alternating.")
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--no-migrate", action="store_true", help="The database is migrated already.")
    parser.add_argument("--json-out", help="Also write the figures as JSON here.")
    options = parser.parse_args(argv)
    env = bench_env()
    demo = demo_seeded(env, products=options.products, migrate=not options.no_migrate)
    os.environ.update(env)
    import django

    django.setup()
    import logging

    logging.disable(logging.WARNING)  # one access-log line a lookup would be most of the CPU measured

    from app.wsgi import application

    summary = measure(application, lookups(demo), options)
    report(summary)
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
