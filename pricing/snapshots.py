"""The Redis copy of price snapshots: encoding, version-guarded writes, miss markers.

PostgreSQL holds the authoritative :class:`~pricing.models.PriceSnapshot`; Redis holds
a copy per (retailer, SKU) for the hot path, as ``<12-digit version><JSON>`` (or
``<version>-`` for an inactive product). Writes go through a Lua script that never
replaces a newer version with an older one, so concurrent writers cannot roll a
price back. Copies expire after ``SNAPSHOT_TTL_SECONDS``; a copy that could not be made after
a commit (Redis away, process died) is made by the resync beat within a minute.
An unknown SKU is cached as a bare ``-`` for ``MISS_TTL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis
import structlog
from django.conf import settings
from django.utils import timezone

from app.redis_client import RedisUnavailableError, redis_guarded
from pricing.models import PriceSnapshot
from pricing.money import amount_format

log = structlog.get_logger(__name__)

SNAPSHOT_TTL_SECONDS = 3600
PATIENT_TIMEOUT_SECONDS = 2.0
RESYNC_OVERLAP = timedelta(minutes=2)
RESYNC_BATCH = 500
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


# Bump when the encoding below changes, so a release never reads the previous one's copies.
ENCODING_VERSION = 2


def snapshot_key_prefix(retailer_id: int) -> str:
    """``<prefix>:ps<encoding>:<retailer>:``; a SKU appended to it is the key of its snapshot."""
    return f"{settings.REDIS_KEY_PREFIX}:ps{ENCODING_VERSION}:{retailer_id}:"


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


class UnreadableSnapshotError(ValueError):
    """A cached value this code cannot decode (corrupt, or written in another format)."""


def snapshot_decode(value: bytes) -> dict[str, Any] | None:
    """The snapshot body (steps kept raw under ``"s"``), or None for an inactive product or a miss."""
    if value == MISS or value[VERSION_WIDTH:] == MISS:
        return None
    split = value.find(b"\n", VERSION_WIDTH)
    try:
        body: dict[str, Any] = orjson.loads(value[VERSION_WIDTH:split])
    except orjson.JSONDecodeError as error:
        raise UnreadableSnapshotError(str(error)) from error
    if split < 0 or not isinstance(body, dict) or not {"c", "b", "p", "x"} <= body.keys():
        raise UnreadableSnapshotError("not a snapshot body")
    body["s"] = value[split + 1 :]
    return body


def snapshot_steps(body: dict[str, Any]) -> dict[str, Any]:
    """The steps of a decoded body, parsed on demand."""
    steps = body["s"]
    return orjson.loads(steps) if isinstance(steps, bytes) else steps  # type: ignore[no-any-return]


def _write(client: redis.Redis, snapshots: list[PriceSnapshot]) -> None:
    pipe = client.pipeline(transaction=False)
    for s in snapshots:
        pipe.eval(
            _SET_IF_NEWER, 1, snapshot_key(s.retailer_id, s.sku), snapshot_encode(s), s.version, SNAPSHOT_TTL_SECONDS
        )
    pipe.execute()


def snapshots_cache_write(snapshots: Iterable[PriceSnapshot]) -> None:
    """Copy snapshots to Redis from the hot path: tight timeouts and the breaker; failures are dropped
    (the next miss reads PostgreSQL again)."""
    rows = list(snapshots)
    if rows:
        try:
            redis_guarded(lambda client: _write(client, rows))
        except RedisUnavailableError:
            return


_patient: tuple[str, redis.Redis] | None = None


def _patient_client() -> redis.Redis:
    """A client for background copies: seconds, not milliseconds, of patience and no breaker, so a
    busy worker machine does not skip a copy that the hot path would then miss for an hour."""
    global _patient
    if _patient is None or _patient[0] != settings.REDIS_URL:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=PATIENT_TIMEOUT_SECONDS, socket_connect_timeout=PATIENT_TIMEOUT_SECONDS
        )
        _patient = (settings.REDIS_URL, client)
    return _patient[1]


def snapshots_cache_store(snapshots: Iterable[PriceSnapshot]) -> bool:
    """Copy freshly computed snapshots to Redis (newer versions only); False if Redis did not take them.

    A copy that fails is made later by :func:`snapshots_cache_resync`.
    """
    rows = list(snapshots)
    if not rows:
        return True
    try:
        _write(_patient_client(), rows)
    except (redis.RedisError, OSError) as error:
        log.warning("snapshot_cache_store_failed", count=len(rows), error=str(error))
        return False
    return True


def snapshots_cache_resync(*, now: datetime | None = None) -> int:
    """Copy to Redis every snapshot computed since the last successful resync (2 min overlap).

    Beat runs it every minute, so a copy lost to a Redis outage or to a process that died
    between its commit and its copy is made within about a minute of Redis answering again.
    Idempotent: copies are version-guarded. Returns the number of snapshots copied.
    """
    moment = now or timezone.now()
    mark_key = f"{settings.REDIS_KEY_PREFIX}:ps-resynced-at"
    try:
        mark = _patient_client().get(mark_key)
    except (redis.RedisError, OSError):
        return 0
    oldest = moment - timedelta(seconds=SNAPSHOT_TTL_SECONDS)
    since = oldest if mark is None else max(oldest, datetime.fromisoformat(mark.decode()) - RESYNC_OVERLAP)
    copied, batch = 0, []
    for snapshot in PriceSnapshot.objects.filter(computed_at__gte=since, version__gt=0).iterator(chunk_size=500):
        batch.append(snapshot)
        if len(batch) == RESYNC_BATCH:
            if not snapshots_cache_store(batch):
                return copied
            copied, batch = copied + len(batch), []
    if not snapshots_cache_store(batch):
        return copied
    _patient_client().set(mark_key, moment.isoformat(), ex=SNAPSHOT_TTL_SECONDS)
    return copied + len(batch)


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
