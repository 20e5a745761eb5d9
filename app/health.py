"""Liveness and readiness probes (plain views: no auth, no DB for /healthz).

Readiness means "this process can serve traffic", not "every dependency is up": a load
balancer or an orchestrator takes an unready process out of rotation, and every web
process shares the same database, cache and broker, so failing on one of them would
empty the rotation exactly when stale prices should be served. The rule:

* **unready (503)** when the process can serve no price at all: neither the cache Redis
  (snapshots) nor PostgreSQL (stale prices) answers; or when the broker would lose
  work and ``BROKER_CONFIG_CHECK=refuse`` (``workers.broker_config``; normally such a
  process does not even start, this covers a broker that only answered after the start);
* **ready (200)** otherwise. The cache, the database and the broker each report their
  state in the body (``ok`` / ``unavailable``) and in ``/metrics``
  (``storefabric_dependency_up``); the broker being away costs events a ``503`` with
  ``Retry-After``, which the JS insert resends, not the prices.

The body names what failed and never carries error text (it is logged instead).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import redis
import structlog
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

from workers.broker_config import broker_config_state

log = structlog.get_logger(__name__)

PROBE_TIMEOUT_SECONDS = 1.0
PRICE_SOURCES = ("database", "redis")
"""Either one serves prices: snapshots from the cache, stale prices from PostgreSQL."""


def _json(body: dict[str, object], status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def healthz(request: HttpRequest) -> HttpResponse:
    return _json({"status": "ok"})


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis_ping(url: str) -> Callable[[], None]:
    def ping() -> None:
        client = redis.Redis.from_url(
            url, socket_timeout=PROBE_TIMEOUT_SECONDS, socket_connect_timeout=PROBE_TIMEOUT_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()

    return ping


def dependency_states() -> dict[str, bool]:
    """Whether the database, the cache Redis and the broker answer now."""
    checks: dict[str, Callable[[], None]] = {
        "database": _database,
        "redis": _redis_ping(settings.REDIS_URL),
        "broker": _redis_ping(settings.CELERY_BROKER_URL),
    }
    states = {}
    for name, check in checks.items():
        try:
            check()
            states[name] = True
        except Exception as error:  # noqa: BLE001 - a probe reports any failure, it never raises
            log.warning("readiness_check_failed", check=name, error=f"{type(error).__name__}: {error}")
            states[name] = False
    return states


def _broker_config() -> str:
    state = broker_config_state()
    if not state.checked:
        return "unchecked"
    return ",".join(state.problems) or "ok"


def readyz(request: HttpRequest) -> HttpResponse:
    """200 while this process can serve prices (see the module docstring); 503 naming why not."""
    states = dependency_states()
    checks: dict[str, str] = {name: "ok" if up else "unavailable" for name, up in states.items()}
    checks["broker_config"] = _broker_config()
    failed = [name for name, up in states.items() if not up]
    if checks["broker_config"] not in ("ok", "unchecked"):
        failed.append("broker_config")
    unready = not any(states[name] for name in PRICE_SOURCES) or broker_config_state().refused
    status = "unavailable" if unready else ("degraded" if failed else "ok")
    return _json({"status": status, "failed": failed, "checks": checks}, status=503 if unready else 200)
