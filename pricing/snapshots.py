"""The Redis copy of price snapshots: encoding, version-guarded writes, miss markers.

PostgreSQL holds the authoritative :class:`~pricing.models.PriceSnapshot`; Redis holds
a copy per (retailer, SKU) for the hot path, as ``<12-digit version><JSON>`` (or
``<version>-`` for an inactive product). Writes go through a Lua script that never
replaces a newer version with an older one, so concurrent writers cannot roll a
price back. Copies expire after ``SNAPSHOT_TTL_SECONDS``: if a process dies between
the commit and the Redis write, the stale copy lives at most that long.
An unknown SKU is cached as a bare ``-`` for ``MISS_TTL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import redis
import structlog
from django.conf import settings

from app.redis_client import RedisUnavailableError, redis_guarded
from pricing.models import PriceSnapshot
from pricing.money import amount_format

log = structlog.get_logger(__name__)

SNAPSHOT_TTL_SECONDS = 3600
MISS_TTL_SECONDS = 5
VERSION_WIDTH = 12
MISS = b"-"

_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local stored = tonumber(string.sub(current, 1, 12))
  if stored and stored > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""


def snapshot_key_prefix(retailer_id: int) -> str:
    """``<prefix>:ps:<retailer>:``; a SKU appended to it is the key of its snapshot."""
    return f"{settings.REDIS_KEY_PREFIX}:ps:{retailer_id}:"


def snapshot_key(retailer_id: int, sku: str) -> str:
    return snapshot_key_prefix(retailer_id) + sku


def snapshot_body(snapshot: PriceSnapshot) -> dict[str, Any]:
    """What the hot path needs from a snapshot, in short keys (steps come separately)."""
    return {
        "c": snapshot.currency,
        "b": amount_format(snapshot.base_price, snapshot.currency),
        "p": snapshot.prices,
        "x": snapshot.experiment,
    }


def snapshot_encode(snapshot: PriceSnapshot) -> bytes:
    """``<version><body JSON>\n<steps JSON>``: orjson never writes a raw newline, so the
    hot path parses the small body alone and the steps only for ``explain=1``."""
    prefix = str(snapshot.version).zfill(VERSION_WIDTH).encode()
    if not snapshot.active:
        return prefix + MISS
    return prefix + orjson.dumps(snapshot_body(snapshot)) + b"\n" + orjson.dumps(snapshot.steps)


def snapshot_decode(value: bytes) -> dict[str, Any] | None:
    """The snapshot body (steps kept raw under ``"s"``), or None for an inactive product or a miss."""
    if value == MISS or value[VERSION_WIDTH:] == MISS:
        return None
    split = value.find(b"\n", VERSION_WIDTH)
    body: dict[str, Any] = orjson.loads(value[VERSION_WIDTH:split])
    body["s"] = value[split + 1 :]
    return body


def snapshot_steps(body: dict[str, Any]) -> dict[str, Any]:
    """The steps of a decoded body, parsed on demand."""
    steps = body["s"]
    return orjson.loads(steps) if isinstance(steps, bytes) else steps  # type: ignore[no-any-return]


def snapshots_cache_write(snapshots: Iterable[PriceSnapshot]) -> None:
    """Copy snapshots to Redis (newer versions only); an unreachable Redis is logged, not raised."""
    rows = [(snapshot_key(s.retailer_id, s.sku), snapshot_encode(s), s.version) for s in snapshots]
    if not rows:
        return

    def write(client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        for key, payload, version in rows:
            pipe.eval(_SET_IF_NEWER, 1, key, payload, version, SNAPSHOT_TTL_SECONDS)
        pipe.execute()

    try:
        redis_guarded(write)
    except RedisUnavailableError as error:
        log.warning("snapshot_cache_write_failed", count=len(rows), error=str(error))


def misses_cache_write(retailer_id: int, skus: Iterable[str]) -> None:
    """Remember unknown SKUs for a few seconds, never over a real snapshot (``SET NX``)."""
    keys = [snapshot_key(retailer_id, sku) for sku in skus]
    if not keys:
        return

    def write(client: redis.Redis) -> None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, MISS, ex=MISS_TTL_SECONDS, nx=True)
        pipe.execute()

    try:
        redis_guarded(write)
    except RedisUnavailableError:
        return
