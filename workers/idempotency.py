"""Idempotency barriers: make an effect happen once however often its message arrives.

Delivery is at least once (late acks, redelivery after a crash, a message
published twice), so every effect is guarded by the message's stable key.
Two barriers, for two kinds of effect:

**Database barrier** — :func:`db_once`. Use it whenever the effect is a write
to PostgreSQL (counts, rows, state changes) — the default choice. The claim is
a row with a unique key inserted *in the same transaction* as the effect: both
commit or neither does, so a crash at any point leaves either "applied and
claimed" or "neither", and a concurrent duplicate blocks on the unique index
until the first commits, then finds the claim. Durable, survives any Redis
restart or eviction. Costs one INSERT (~0.2 ms) in a transaction you have anyway.

**Redis barrier** — :func:`redis_once`. Use it only when the effect itself lives
in Redis (a counter, a cache entry, a rate window): the check (``SET NX`` with a
TTL) and the effect's commands run in one Lua script, atomically, on the same
server. Point it at a Redis that does not evict (the broker instance, or a
dedicated one): on an evicting cache a dropped claim lets a duplicate through.
A Redis restart without persistence forgets claims and effects together.

Neither barrier makes remote side effects (email, webhooks) exactly once: for
those, claim a delivery row with a conditional update first, then send (the
remote end dedups on the key we send along).

Dedup memory is bounded by ``IDEMPOTENCY_WINDOW_SECONDS``: database claims are
purged after it by the ``workers.idempotency_purge`` beat task; Redis claims
expire by TTL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TypeVar

import orjson
import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from workers.models import IdempotencyRecord

T = TypeVar("T")

_CLAIM_SQL = "INSERT INTO {table} (key, created_at) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"

_REDIS_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
for i = 2, #ARGV do
    redis.call(unpack(cjson.decode(ARGV[i])))
end
redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[1]))
return 1
"""


def db_claim(key: str) -> bool:
    """Claim ``key`` inside the caller's transaction; True if this is the first claim.

    Must run inside ``transaction.atomic`` together with the effect it guards.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("db_claim must run inside the transaction of the effect it guards")
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL.format(table=IdempotencyRecord._meta.db_table), [key, timezone.now()])
        return cursor.rowcount == 1


def db_once(*, key: str, effect: Callable[[], T]) -> tuple[bool, T | None]:
    """Run ``effect`` once per ``key``: claim and effect commit together in one transaction.

    Returns ``(True, result)`` when the effect ran now, ``(False, None)`` when the key
    was claimed before (within the dedup window). If ``effect`` raises, the claim
    rolls back with it, so a retry applies the effect.
    """
    with transaction.atomic():
        if not db_claim(key):
            return False, None
        return True, effect()


def redis_once(
    *, client: redis.Redis, key: str, commands: Sequence[Sequence[str | int | float]], ttl: int | None = None
) -> bool:
    """Atomically: if ``key`` was not claimed, run ``commands`` and claim it (with a TTL).

    ``commands`` are Redis commands as lists, e.g. ``[["HINCRBY", "views:sku1", "n", 1]]``.
    Returns True when the commands ran now, False for a duplicate. The script runs
    with no other command in between; the claim is written last, so a command that
    fails (raising here) leaves the key unclaimed for the retry — commands before it
    stay applied (Redis does not roll scripts back), so prefer one command, or ones
    that cannot fail.
    """
    window = ttl or settings.IDEMPOTENCY_WINDOW_SECONDS
    encoded = [orjson.dumps(list(command)).decode() for command in commands]
    return bool(client.eval(_REDIS_ONCE, 1, key, window, *encoded))


def idempotency_purge(*, older_than: timedelta | None = None) -> int:
    """Forget database claims older than the dedup window; returns rows deleted.

    Deletes in slices of 5,000 so a large purge never holds long locks.
    """
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.IDEMPOTENCY_WINDOW_SECONDS))
    deleted = 0
    while True:
        ids = list(IdempotencyRecord.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:5000])
        if not ids:
            return deleted
        deleted += IdempotencyRecord.objects.filter(id__in=ids).delete()[0]
