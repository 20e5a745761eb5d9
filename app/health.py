"""Liveness and readiness probes (plain views: no auth, no DB for /healthz)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse

PROBE_TIMEOUT_SECONDS = 1.0


def _json(body: dict[str, object], status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def healthz(request: HttpRequest) -> HttpResponse:
    return _json({"status": "ok"})


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis_ping(url: str) -> Callable[[], None]:
    def ping() -> None:
        redis.Redis.from_url(
            url, socket_timeout=PROBE_TIMEOUT_SECONDS, socket_connect_timeout=PROBE_TIMEOUT_SECONDS
        ).ping()

    return ping


def readyz(request: HttpRequest) -> HttpResponse:
    """200 when the database, the cache Redis and the broker answer; else 503 naming which."""
    checks: dict[str, Callable[[], None]] = {
        "database": _database,
        "redis": _redis_ping(settings.REDIS_URL),
        "broker": _redis_ping(settings.CELERY_BROKER_URL),
    }
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as error:  # noqa: BLE001 - a probe reports any failure, it never raises
            results[name] = f"error: {error.__class__.__name__}: {error}"
    failed = [name for name, state in results.items() if state != "ok"]
    if failed:
        return _json({"status": "unavailable", "failed": failed, "checks": results}, status=503)
    return _json({"status": "ok", "checks": results})
