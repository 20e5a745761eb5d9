"""Failed authentications per client: a flood of unknown keys ends in 429s before any SQL.

A key the process does not know costs a query; random ``pk_`` keys would make that one
query per request. Each client (``app.client_identity``: its keyed hash, never its address)
may fail ``AUTH_FAILURES_PER_CLIENT_PER_MINUTE`` times per fixed one-minute window,
counted in the cache Redis across every web process. Past it, a key this process does not
know is answered 429 without looking it up; keys it knows are still served. The count is
read before the lookup and increased after a refusal, so the queries one client causes
per window are bounded by the limit plus the requests in flight when it was reached.
While Redis is unreachable the limit fails open (and says so in the log), as the rate limit does.
"""

from __future__ import annotations

import time

import redis
import structlog
from django.conf import settings

from app.errors import ApiError
from app.redis_client import RedisUnavailableError, cache_key, redis_guarded, round_trip

log = structlog.get_logger(__name__)

WINDOW_SECONDS = 60


def _window(client: str) -> tuple[str, int]:
    """The counter's key for this window and the seconds until the next one."""
    moment = int(time.time())
    return cache_key("af", client, moment // WINDOW_SECONDS), WINDOW_SECONDS - moment % WINDOW_SECONDS


def auth_failures_check(client: str) -> None:
    """Raise a 429 ``rate_limited`` when ``client`` already failed too often in this window."""
    key, resets_in = _window(client)

    def count(connection: redis.Redis) -> int:
        return int(round_trip(connection, [("GET", key)])[0] or 0)

    try:
        failures = redis_guarded(count)
    except RedisUnavailableError:
        log.warning("auth_failures_fail_open", client=client)
        return
    limit = settings.AUTH_FAILURES_PER_CLIENT_PER_MINUTE
    if failures >= limit:
        raise ApiError(
            "rate_limited",
            f"More than {limit} requests with unknown or revoked keys this minute from this client.",
            headers={"Retry-After": str(resets_in)},
        )


def auth_failure_record(client: str) -> None:
    """Count one refused key for ``client`` (``INCR`` and ``EXPIRE`` in one round trip; a window's
    key is its own, so renewing its TTL keeps it only a little past the window)."""
    key, _ = _window(client)
    try:
        redis_guarded(lambda connection: round_trip(connection, [("INCR", key), ("EXPIRE", key, WINDOW_SECONDS + 1)]))
    except RedisUnavailableError:
        log.warning("auth_failures_fail_open", client=client)
