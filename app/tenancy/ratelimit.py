"""Per-key rate limits: one atomic fixed-window counter in Redis.

The counter is a Lua script (INCR, then EXPIRE on the first hit) so it is atomic
and can ride in the same pipeline as the price lookup: one round trip for both.
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

_INCR_WITH_TTL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


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


def rate_limit_command(window: RateWindow) -> tuple[str | int, ...]:
    """The counter increment as one raw command (its reply is a count), to send in the same
    round trip as other commands."""
    # EVAL rather than a registered Script: Redis caches the compiled body either way, and
    # EVALSHA would need a NOSCRIPT fallback on every connection to a restarted Redis.
    return ("EVAL", _INCR_WITH_TTL, 1, window.key, WINDOW_SECONDS + 1)


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
        return int(round_trip(client, [rate_limit_command(window)])[0])

    try:
        hits = redis_guarded(count)
    except RedisUnavailableError:
        log.warning("rate_limit_fail_open", key_prefix=context.key_prefix)
        return
    rate_limit_enforce(context, hits, window)
