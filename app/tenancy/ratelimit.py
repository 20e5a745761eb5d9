"""Rate limits: atomic fixed-window counters in Redis, per key and, for publishable keys, per client.

A publishable key is public and shared by all of a retailer's shoppers, so one counter per
key would let any one client spend the whole retailer's budget. Publishable-key requests
are therefore counted per client too (the keyed hash of :mod:`app.client_identity`, under
``RATE_LIMIT_PER_CLIENT_PER_MINUTE``), and the key's counter stays as the retailer-wide
ceiling, to which a request refused for its client does not count: a flood from one client
is refused without eating into the other shoppers' budget. (The client's counter is named
by its hash, so it starts again when the hash key rotates: once a ``CLIENT_HASH_ROTATION_SECONDS``.)

Secret keys (a retailer's own servers) are counted per key only, as two plain commands:
``INCR`` and ``EXPIRE`` (any server version: see ``COUNTER_TTL_SECONDS``). Per client the
second counter depends on the first, which plain commands cannot express in one round
trip, so it is a small Lua script (:data:`CLIENT_AND_KEY_SCRIPT`, sent by its SHA and
loaded again when the server has lost its script cache). Each rides in the same round trip
as the price lookup. Redis CPU a request (``INFO commandstats``, Redis 7.0, our shared 2-core
machine, 20,000 requests over 10,000 clients): the two commands 0.4 µs, the script 5.5 to 6.5 µs
(four plain commands would be 1.7 to 2 µs, but could not leave the key's counter alone);
``bench/prices_bench.py --client-limits`` measures what that costs end to end.
While Redis is unreachable the limit fails open and the breaker logs it.
"""

from __future__ import annotations

import hashlib
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

# KEYS: the client's counter, the key's counter; ARGV: the client's limit, the counters' TTL.
# Answers {client count, key count}; the key's counter is left alone (0) past the client's limit.
CLIENT_AND_KEY_SCRIPT = """
local client = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if client > tonumber(ARGV[1]) then
  return {client, 0}
end
local key = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {client, key}
"""
_SCRIPT_SHA = hashlib.sha1(CLIENT_AND_KEY_SCRIPT.encode(), usedforsecurity=False).hexdigest()

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


def _commands(window: RateWindow, *, by_sha: bool = True) -> list[Command]:
    if window.client_key is None:
        return [("INCR", window.key), ("EXPIRE", window.key, COUNTER_TTL_SECONDS)]
    script = ("EVALSHA", _SCRIPT_SHA) if by_sha else ("EVAL", CLIENT_AND_KEY_SCRIPT)
    return [(*script, 2, window.client_key, window.key, window.client_limit, COUNTER_TTL_SECONDS)]


def counted_round_trip(
    client: redis.Redis, commands: Sequence[Command], window: RateWindow
) -> tuple[list[Any], RateCounts]:
    """Send ``commands`` and the request's counter increments in one round trip: the
    replies to ``commands`` and the counts. A server that lost its script cache (a restart)
    gets the script once in full (``EVAL`` caches it for the next ``EVALSHA``)."""
    try:
        replies = round_trip(client, [*commands, *_commands(window)])
    except redis.exceptions.NoScriptError:
        replies = round_trip(client, [*commands, *_commands(window, by_sha=False)])
    counted = replies[len(commands) :]
    if window.client_key is None:
        return replies[: len(commands)], RateCounts(key=int(counted[0]))
    client_count, key_count = counted[0]
    return replies[: len(commands)], RateCounts(key=int(key_count), client=int(client_count))


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
