"""kombu's Redis transport, fenced: every line of ours that depends on its internals.

Upstream behaviour this module relies on (kombu 5.7, ``kombu/transport/redis.py``,
https://github.com/celery/kombu/blob/main/kombu/transport/redis.py):

* ``QoS.append`` records a message a consumer took as unacknowledged: the ``unacked``
  hash maps its delivery tag to ``[payload, exchange, routing_key]`` (kombu JSON) and the
  ``unacked_index`` sorted set maps the tag to the time it was taken, in one MULTI.
* ``QoS._remove_from_indices`` is how every ack, reject and ``restore_by_tag`` drops it.
* ``QoS.restore_visible`` gives a message back only once it is older than the
  visibility timeout (one hour here), whether or not its worker is alive: kombu knows
  no holder, so it cannot tell a dead worker's message from a live one's.
* ``Channel._do_restore_message`` puts a restored message at the front of its queue
  (``RPUSH``; consumers ``BRPOP`` from the tail), with ``redelivered`` set in its headers
  and delivery info, on the list of its priority step (``Channel._q_for_pri``).
* A delivery tag is assigned at publish and kept by a restore.

What this module adds (:class:`Transport`, configured as Celery's ``broker_transport``
for ``redis://`` brokers in ``workers.celery_config``): each channel is a *holder* with
an id of its own (host, pid, random part: a new one for every connection; after a broker
loss the old connection's holder is vouched for only while a task running then still holds
a message of it, :func:`live_holders`, and the messages Celery dropped go back through
``workers.kombu_redis_reconnect``). The same MULTI that records a message as
unacknowledged records its holder (``sf:recovery:holders``, tag -> holder) and sets the
holder's liveness key (``sf:recovery:alive:<holder>``, a short TTL), so there is no
instant at which a message is unacknowledged without a live holder on record. Removing
a message from kombu's indices removes its holder record in the same MULTI.
``workers.recovery`` keeps the liveness keys of this process's open channels fresh and
gives back, atomically, the messages whose holder's key expired.

A requeue (``QoS.reject(requeue=True)``: a retry that could not be published, a cancelled
run) that the broker answers with an error reply — OOM, READONLY, MISCONF — raised out of
Celery's event loop and ended the worker. :class:`HolderQoS` keeps such a message (still
unacknowledged, still held) and the recovery thread tries the requeue again
(:func:`refused_requeues_retry`) until the broker takes it.

``workers/tests/test_kombu_redis_fence.py`` checks all of the above against the
installed kombu (and the source of the methods copied here): it fails when the library
changes underneath.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
import weakref
from bisect import bisect
from typing import Any, cast

import redis
import structlog
from django.conf import settings
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps, loads

UNACKED_KEY: str = kombu_redis.Channel.unacked_key
UNACKED_INDEX_KEY: str = kombu_redis.Channel.unacked_index_key
PRIORITY_STEPS: list[int] = list(kombu_redis.Channel.priority_steps)
PRIORITY_SEPARATOR: str = kombu_redis.Channel.sep
HOLDERS_KEY = "sf:recovery:holders"
ALIVE_PREFIX = "sf:recovery:alive:"

log = structlog.get_logger(__name__)

_open_channels: weakref.WeakSet[HolderChannel] = weakref.WeakSet()
_open_lock = threading.Lock()


def alive_key(holder: str) -> str:
    return f"{ALIVE_PREFIX}{holder}"


class HolderQoS(kombu_redis.QoS):  # type: ignore[misc]
    """kombu's QoS, recording the holder of every unacknowledged message with it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused: set[str] = set()  # delivery tags whose requeue the broker refused

    def append(self, message: Any, delivery_tag: str) -> None:
        # kombu's QoS.append, plus the holder record and its liveness, in the same MULTI.
        delivery = message.delivery_info
        exchange, routing_key = delivery["exchange"], delivery["routing_key"]
        channel = cast("HolderChannel", self.channel)
        ttl = settings.RECOVERY_LIVENESS_TTL_SECONDS
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()})
            pipe.hset(self.unacked_key, delivery_tag, dumps([message._raw, exchange, routing_key]))
            pipe.hset(HOLDERS_KEY, delivery_tag, channel.holder)
            pipe.set(alive_key(channel.holder), 1, ex=ttl)
            pipe.execute()
            virtual.QoS.append(self, message, delivery_tag)
        channel.holding()

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if not requeue:
            super().reject(delivery_tag, requeue=False)
            return
        try:
            super().reject(delivery_tag, requeue=True)
        except redis.ResponseError as error:  # a connection error is the reconnect's business
            log.warning("requeue_refused", delivery_tag=delivery_tag, error=f"{type(error).__name__}: {error}")
            with _open_lock:
                self.refused.add(delivery_tag)

    def requeue_refused(self) -> int:
        """Try again the requeues the broker refused; returns how many it took now."""
        with _open_lock:
            tags = list(self.refused)
        taken = 0
        for tag in tags:
            try:
                super().reject(tag, requeue=True)
            except redis.ResponseError:
                continue
            with _open_lock:
                self.refused.discard(tag)
            taken += 1
        return taken

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        with self.pipe_or_acquire(pipe) as pipe:
            return super()._remove_from_indices(delivery_tag, pipe).hdel(HOLDERS_KEY, delivery_tag)  # type: ignore[misc]


class HolderChannel(kombu_redis.Channel):  # type: ignore[misc]
    """A Redis channel that is a holder of its own: ``host:pid:random``."""

    QoS = HolderQoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        super().__init__(*args, **kwargs)

    def holding(self) -> None:
        """This channel holds messages: ``workers.recovery`` keeps its liveness key fresh."""
        if not self.closed:
            with _open_lock:
                _open_channels.add(self)


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = HolderChannel


def live_holders() -> list[str]:
    """The holders this process vouches for: its open channels that took messages, and its
    closed ones that still hold a message (kombu sets ``closed`` first thing in
    ``Channel.close``, and a close that restored everything leaves nothing held).

    A channel closed by a lost broker connection, whose restore failed because the broker was
    away, still holds what it took: the tasks running then go on, and acknowledge or requeue
    through it after the reconnect (``workers.kombu_redis_reconnect``), which puts back the rest.
    Not vouching for it let its liveness key lapse under those live tasks — 30 s after the loss,
    or at once after an outage longer than the TTL — and the sweep ran them a second time."""
    with _open_lock:
        channels = list(_open_channels)
    return [channel.holder for channel in channels if not channel.closed or _still_holds(channel)]


def _still_holds(channel: HolderChannel) -> bool:
    """Whether a closed channel has deliveries not yet acknowledged, rejected or restored
    (kombu's ``virtual.QoS``: ``_delivered`` by tag; an ack adds its tag to ``_dirty`` and the
    next ``append`` drops it). Read from the recovery thread while the event loop may change
    them: a moment's inconsistency can only keep a holder alive one refresh longer."""
    qos = getattr(channel, "_qos", None)
    if qos is None:
        return False
    try:
        settled = set(qos._dirty)
        return any(tag not in settled for tag in tuple(qos._delivered))
    except RuntimeError:  # changed size while copied
        return True


def refused_requeues_retry() -> int:
    """Requeue again what the broker refused on this process's open channels (recovery thread)."""
    with _open_lock:
        queues = [cast("HolderQoS", channel.qos) for channel in list(_open_channels) if not channel.closed]
    return sum(qos.requeue_refused() for qos in queues if qos.refused)


def restored_message(raw: bytes, *, prefix: str = "") -> tuple[str, str] | None:
    """The list a restore pushes the ``unacked`` entry ``raw`` to, and the message it pushes,
    exactly as ``QoS.restore_by_tag`` would (``Channel._do_restore_message``); ``None`` for a
    message of a named exchange, which kombu routes through its binding table (left to
    kombu's own restore: every queue of this project is published to the default exchange)."""
    payload, exchange, routing_key = loads(raw)
    if exchange:
        return None
    try:
        payload["headers"]["redelivered"] = True
        payload["properties"]["delivery_info"]["redelivered"] = True
    except KeyError:
        pass
    return f"{prefix}{_queue_for_priority(routing_key, _priority(payload))}", dumps(payload)


def _priority(payload: dict[str, Any]) -> int:
    """``Channel._get_message_priority`` (0..9, default 0)."""
    try:
        return max(min(int(payload["properties"]["priority"]), 9), 0)
    except (TypeError, ValueError, KeyError):
        return 0


def _queue_for_priority(queue: str, priority: int) -> str:
    """``Channel._q_for_pri``: the list of the priority step at or below ``priority``."""
    step = PRIORITY_STEPS[bisect(PRIORITY_STEPS, priority) - 1]
    return f"{queue}{PRIORITY_SEPARATOR}{step}" if step else queue
