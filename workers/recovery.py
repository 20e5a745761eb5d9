"""Dead-consumer recovery: a dead worker's messages come back in seconds, a live one's never.

On the Redis broker a message a worker took sits in kombu's ``unacked`` hash until the
worker acknowledges it. If the worker dies — its main process killed, its host lost, or
its connection dropped by a broker that crashed and came back from its append-only file
(Celery then drops what the old connection held) — kombu hands the message to another
worker only after the visibility timeout (``CELERY_VISIBILITY_TIMEOUT``, one hour),
because it cannot tell a dead worker's message from one a live worker is still running.
(A pool child that dies is different: its worker rejects the message back to the queue
at once, ``task_reject_on_worker_lost``.)

This module makes the difference visible:

* every message taken is recorded with its *holder* — the channel (one per broker
  connection) of the worker process that took it — in the same MULTI that records it as
  unacknowledged, and that MULTI sets the holder's liveness key, TTL
  ``RECOVERY_LIVENESS_TTL_SECONDS`` (the kombu side is fenced in ``workers.kombu_redis``);
* every worker's main process runs :class:`Recovery`, a thread that refreshes the
  liveness keys of its channels that hold messages — its open ones, and the ones closed by
  a lost broker connection under tasks that still run (``workers.kombu_redis.live_holders``) —
  every third of the TTL and, every
  ``RECOVERY_SWEEP_INTERVAL_SECONDS`` (and once at start), runs :func:`recovery_sweep`;
* the sweep puts back at the front of its queue, marked redelivered as kombu's own restore
  does, each unacknowledged message whose holder's liveness key is gone. The check and the
  restore are one Lua script that also checks the entry and its holder are unchanged, so
  two sweepers, or a sweeper and a worker's ack, never restore one message twice, and a
  message restored and taken again (same delivery tag, new holder) is left alone.

So a dead worker's messages come back within TTL + sweep interval (45 s by default) of its
death, wherever a worker still runs; with no worker left, when the first one starts; after
a broker restart, no sooner than one TTL after it (keys lapse on the broker's clock while
it is away, when no holder can refresh them). A
redelivered message runs behind its task's idempotency barrier and counts toward
``CELERY_TASK_MAX_DELIVERIES`` (a message whose run kills its whole worker becomes a dead
letter). A message with no holder on record (taken by a worker without this transport)
is left to kombu's visibility timeout. A worker frozen longer than the TTL (stopped, its
host partitioned from the broker) is taken for dead: its messages run again elsewhere,
behind the same barriers. A message lost between ``BRPOP`` and its ``unacked`` record is
not held by anyone; the publish journal (``workers.journal``) and the outbox relay cover
that window.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis
import structlog
from django.conf import settings

from workers.broker import broker_redis
from workers.journal import key_prefix
from workers.kombu_redis import (
    HOLDERS_KEY,
    UNACKED_INDEX_KEY,
    UNACKED_KEY,
    alive_key,
    live_holders,
    refused_requeues_retry,
    restored_message,
)

log = structlog.get_logger(__name__)

SWEEP_CHUNK = 500

# KEYS: unacked, unacked_index, holders, the holder's liveness key, the queue's list.
# ARGV: delivery tag, holder, the unacked entry as read, the message to push back.
_RESTORE = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[3] then return 0 end
redis.call('RPUSH', KEYS[5], ARGV[4])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

# A holder record whose message is no longer unacknowledged (kombu's Channel._restore drops
# the entry without its indices): forget it. KEYS: unacked, holders. ARGV: delivery tag.
_FORGET_ORPHAN = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
return redis.call('HDEL', KEYS[2], ARGV[1])
"""


@dataclass(frozen=True)
class SweepResult:
    examined: int
    held: int
    unknown_holder: int
    restored: int


def recovery_sweep(client: redis.Redis | None = None) -> SweepResult:
    """Give back every unacknowledged message whose holder is no longer alive; returns counts.

    Safe to run in any number of processes at once (see the module docstring). Gives back
    nothing while the broker has run for less than the liveness TTL (:func:`_broker_uptime`).
    """
    client = client or broker_redis()
    if _broker_uptime(client) < settings.RECOVERY_LIVENESS_TTL_SECONDS:
        return SweepResult(examined=0, held=0, unknown_holder=0, restored=0)
    prefix = key_prefix()
    keys = (f"{prefix}{UNACKED_KEY}", f"{prefix}{UNACKED_INDEX_KEY}", f"{prefix}{HOLDERS_KEY}")
    restore = client.register_script(_RESTORE)
    examined = held = unknown = restored = 0
    total = client.zcard(keys[1])
    for start in range(0, total, SWEEP_CHUNK):
        tags = client.zrange(keys[1], start, start + SWEEP_CHUNK - 1)
        if not tags:  # another sweeper (or acks) emptied the index since it was counted
            break
        holders = client.hmget(keys[2], tags)
        alive = _alive(client, {holder for holder in holders if holder}, prefix)
        for tag, holder in zip(tags, holders, strict=True):
            examined += 1
            if holder is None:
                unknown += 1
            elif alive[holder]:
                held += 1
            else:
                restored += _restore_one(client, restore, keys, tag, holder, prefix)
    if client.hlen(keys[2]) > total:
        _forget_orphans(client, keys)
    result = SweepResult(examined=examined, held=held, unknown_holder=unknown, restored=restored)
    if restored:
        log.warning("dead_consumer_messages_restored", **result.__dict__)
    return result


def _broker_uptime(client: redis.Redis) -> float:
    """Seconds the broker has run. A liveness key lapses on the broker's clock, also while the
    broker is away (it comes back from its append-only file with the deadlines it had), when
    no holder can refresh it: right after a restart, a missing key says nothing of its holder.
    After one TTL of uptime it does, since every live worker refreshes every third of a TTL."""
    return float(client.info("server")["uptime_in_seconds"])


def _alive(client: redis.Redis, holders: set[bytes], prefix: str) -> dict[bytes, bool]:
    ordered = sorted(holders)
    with client.pipeline(transaction=False) as pipe:
        for holder in ordered:
            pipe.exists(f"{prefix}{alive_key(holder.decode())}")
        return {holder: bool(found) for holder, found in zip(ordered, pipe.execute(), strict=True)}


def _restore_one(
    client: redis.Redis,
    restore: redis.commands.core.Script,
    keys: tuple[str, str, str],
    tag: bytes,
    holder: bytes,
    prefix: str,
) -> int:
    raw = client.hget(keys[0], tag)
    if raw is None:  # acknowledged meanwhile
        return 0
    target = restored_message(raw, prefix=prefix)
    if target is None:
        return 0
    queue, message = target
    script_keys = [*keys, f"{prefix}{alive_key(holder.decode())}", queue]
    return int(restore(keys=script_keys, args=[tag, holder, raw, message], client=client))


def _forget_orphans(client: redis.Redis, keys: tuple[str, str, str]) -> None:
    forget = client.register_script(_FORGET_ORPHAN)
    for tag, _holder in client.hscan_iter(keys[2]):
        forget(keys=[keys[0], keys[2]], args=[tag], client=client)


def liveness_refresh(client: redis.Redis | None = None) -> int:
    """Extend the liveness keys of this process's open channels; returns how many."""
    holders = live_holders()
    if not holders:
        return 0
    client = client or broker_redis()
    prefix, ttl = key_prefix(), settings.RECOVERY_LIVENESS_TTL_SECONDS
    with client.pipeline(transaction=False) as pipe:
        for holder in holders:
            pipe.set(f"{prefix}{alive_key(holder)}", 1, ex=ttl)
        pipe.execute()
    return len(holders)


class Recovery:
    """The thread of a worker's main process: liveness refresh and sweep (see module docstring).

    A thread rather than a timer of the worker's event loop: a loop busy for a moment must
    not let the liveness of the messages it holds lapse.
    """

    def __init__(self) -> None:
        self.ttl = settings.RECOVERY_LIVENESS_TTL_SECONDS
        self.interval = settings.RECOVERY_SWEEP_INTERVAL_SECONDS
        if self.ttl < 3 or self.interval <= 0:
            raise ValueError("RECOVERY_LIVENESS_TTL_SECONDS must be >= 3 and RECOVERY_SWEEP_INTERVAL_SECONDS > 0")
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sf-recovery", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        tick = min(self.ttl / 3, self.interval)
        next_sweep = 0.0
        while not self.stopping.is_set():
            try:
                liveness_refresh()
                if refused_requeues_retry():
                    log.info("refused_requeues_taken")
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.interval
                    recovery_sweep()
            except redis.RedisError as error:  # the broker is away: the worker reconnects, so do we
                log.warning("recovery_unavailable", error=f"{type(error).__name__}: {error}")
            self.stopping.wait(tick)


_running: Recovery | None = None


def recovery_start() -> None:
    """Start this worker's recovery thread (``worker_ready``; Redis brokers only)."""
    global _running
    if _running is None:
        _running = Recovery()
        _running.start()
        log.info("recovery_started", ttl_s=_running.ttl, sweep_interval_s=_running.interval)


def recovery_stop() -> None:
    global _running
    if _running is not None:
        _running.stop()
        _running = None
