"""Rate limits: atomic fixed-window counters in Redis, per key and, for publishable keys, per client.

A publishable key is public and shared by all of a retailer's shoppers, so one counter per
key would let any one client spend the whole retailer's budget. Publishable-key requests
are therefore counted per client too (the keyed hash of :mod:`app.client_identity`, under
``RATE_LIMIT_PER_CLIENT_PER_MINUTE``), and the key's counter stays as the retailer-wide
ceiling, to which a request refused for its client does not count: a flood from one client
is refused without eating into the other shoppers' budget. (The client's counter is named
by its hash, so it starts again when the hash key rotates: once a ``CLIENT_HASH_ROTATION_SECONDS``.)

Every counter is two plain commands, ``INCR`` and ``EXPIRE`` (any server version: see
``COUNTER_TTL_SECONDS``), riding in the same round trip as the price lookup: secret keys (a
retailer's own servers) send the key's pair, publishable keys the client's pair and the key's.
A request its client is past the limit for is then taken off the key's counter again
(``DECR``, one more round trip, for those requests only), so the ceiling never counts a
request refused for its client; the key's counter is one too high while that round trip
lasts. This replaced a Lua script
that left the key's counter alone in the same round trip: measured in-process (the WSGI
app on 20,000 price lookups from 10,000 shoppers, web + Redis CPU a request, Redis 7.0, our
2-core machine) the limit cost 26 µs over none with the script, 12 µs with plain commands,
most of the difference the script's run in Redis and the web process waiting on it.
``bench/prices_bench.py --client-limits`` measures the limit's cost end to end.
While Redis is unreachable the limit fails open and the breaker logs it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from django.conf import settings
from django.http import HttpRequest

from app.client_identity import request_client_hash
from app.errors import ApiError
from app.redis_client import RedisUnavailableError, cache_key, redis_guarded, round_trip
from app.tenancy.authentication import AuthContext

log = structlog.get_logger(__name__)

WINDOW_SECONDS = 60
# Each window has a key of its own, so an EXPIRE with every INCR (not ``EXPIRE … NX``, which
# servers before Redis 7 refuse) only keeps the counter a little past its window.
COUNTER_TTL_SECONDS = WINDOW_SECONDS + 1

Command = tuple[str | int, ...]


@dataclass(frozen=True)
class RateWindow:
    """The counters one request increments: the key's, and its client's when it has one."""

    key: str
    resets_in: int
    client_key: str | None = None
    client_limit: int = 0


@dataclass(frozen=True)
class RateCounts:
    """The counters after this request: ``client`` is 0 without a per-client counter, ``key``
    is 0 when the client was past its limit (the request did not count for the key)."""

    key: int
    client: int = 0


def rate_window(context: AuthContext, request: HttpRequest, now: float | None = None) -> RateWindow:
    """This minute's counters for the request: per client only for publishable keys, and
    only while ``RATE_LIMIT_PER_CLIENT_PER_MINUTE`` is on."""
    moment = int(now if now is not None else time.time())
    window = moment // WINDOW_SECONDS
    resets_in = WINDOW_SECONDS - moment % WINDOW_SECONDS
    key = cache_key("rl", context.key_prefix, window)
    client_limit = settings.RATE_LIMIT_PER_CLIENT_PER_MINUTE
    if context.is_secret or client_limit <= 0:
        return RateWindow(key=key, resets_in=resets_in)
    client_key = cache_key("rlc", context.key_prefix, request_client_hash(request), window)
    return RateWindow(key=key, resets_in=resets_in, client_key=client_key, client_limit=client_limit)


def _commands(window: RateWindow) -> list[Command]:
    counters = [window.key] if window.client_key is None else [window.client_key, window.key]
    return [command for key in counters for command in (("INCR", key), ("EXPIRE", key, COUNTER_TTL_SECONDS))]


def counted_round_trip(
    client: redis.Redis, commands: Sequence[Command], window: RateWindow
) -> tuple[list[Any], RateCounts]:
    """Send ``commands`` and the request's counter increments in one round trip: the
    replies to ``commands`` and the counts. A request past its client's limit is taken off
    the key's counter again, so that it does not count toward the retailer-wide ceiling."""
    replies = round_trip(client, [*commands, *_commands(window)])
    counted = replies[len(commands) :]
    if window.client_key is None:
        return replies[: len(commands)], RateCounts(key=int(counted[0]))
    client_count = int(counted[0])
    if client_count > window.client_limit:
        round_trip(client, [("DECR", window.key)])
        return replies[: len(commands)], RateCounts(key=0, client=client_count)
    return replies[: len(commands)], RateCounts(key=int(counted[2]), client=client_count)


def rate_limit_enforce(context: AuthContext, counts: RateCounts, window: RateWindow) -> None:
    """Raise a 429 ``ApiError`` when the client or the key is past its limit."""
    if window.client_key is not None and counts.client > window.client_limit:
        raise ApiError(
            "rate_limited",
            f"Limit of {window.client_limit} requests per minute from one client reached.",
            headers={"Retry-After": str(window.resets_in)},
        )
    if counts.key > context.rate_limit_per_minute:
        raise ApiError(
            "rate_limited",
            f"Limit of {context.rate_limit_per_minute} requests per minute reached.",
            headers={"Retry-After": str(window.resets_in)},
        )


def rate_limit_check(context: AuthContext, request: HttpRequest) -> None:
    """Count one request on its own round trip (paths other than the price lookup)."""
    window = rate_window(context, request)

    def count(client: redis.Redis) -> RateCounts:
        return counted_round_trip(client, (), window)[1]

    try:
        counts = redis_guarded(count)
    except RedisUnavailableError:
        log.warning("rate_limit_fail_open", key_prefix=context.key_prefix)
        return
    rate_limit_enforce(context, counts, window)
