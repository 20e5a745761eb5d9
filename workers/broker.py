"""Reading the broker directly: queue depth and age, peeking, purging, delivery counts.

Celery messages carry no publish time, so ``workers.signals`` stamps a
``sent_at`` header on every message at publish; the age of a queue is the age
of its oldest (next) message. On the Redis transport a queue is a list (LPUSH
at the head, BRPOP from the tail, one list per priority step), so the next
message is the list's last element and peeking takes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from django.conf import settings

from app.celery import celery_app
from workers.kombu_redis import PRIORITY_SEPARATOR, PRIORITY_STEPS
from workers.routing import ALL_QUEUES

DELIVERIES_PREFIX = "sf:deliveries"

_client: redis.Redis | None = None


def broker_is_redis() -> bool:
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://", "unix://"))


def broker_redis() -> redis.Redis:
    """This process's client for the broker Redis (never evicts; see README)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5.0, socket_connect_timeout=2.0)
    return _client


def key_prefix() -> str:
    """kombu's ``global_keyprefix`` (none by default): kombu's own clients add it, ours must."""
    return str(celery_app.conf.broker_transport_options.get("global_keyprefix", ""))


def _priority_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS]


@dataclass(frozen=True)
class QueueStats:
    name: str
    depth: int
    oldest_age_seconds: float | None


def _decode(raw: bytes) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(raw)
    return message


def queue_peek(queue: str) -> dict[str, Any] | None:
    """The next message of ``queue`` (raw kombu envelope), without taking it (Redis broker)."""
    if not broker_is_redis():
        raise NotImplementedError("peeking reads the Redis list; use the broker's own console on AMQP")
    client = broker_redis()
    for key in _priority_keys(queue):
        raw = client.lindex(key, -1)
        if raw is not None:
            return _decode(raw)
    return None


def message_sent_at(message: dict[str, Any]) -> float | None:
    sent_at = message.get("headers", {}).get("sent_at")
    return float(sent_at) if sent_at is not None else None


def _declared_depths(queues: tuple[str, ...]) -> list[QueueStats]:
    """Depth from a passive declare (RabbitMQ and other AMQP brokers); no age there."""
    stats = []
    with celery_app.connection_for_read() as connection:
        channel: Any = connection.default_channel
        for queue in queues:
            declared = channel.queue_declare(queue=queue, passive=True)
            stats.append(QueueStats(queue, int(declared.message_count), None))
    return stats


def queue_stats(queues: tuple[str, ...] = ALL_QUEUES) -> list[QueueStats]:
    """Depth and age of the oldest message per queue, in one round trip on Redis."""
    if not broker_is_redis():
        return _declared_depths(queues)
    client = broker_redis()
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in _priority_keys(queue):
                pipe.llen(key)
                pipe.lindex(key, -1)
        replies = pipe.execute()
    now = time.time()
    stats = []
    steps = len(PRIORITY_STEPS)
    for position, queue in enumerate(queues):
        chunk = replies[position * steps * 2 : (position + 1) * steps * 2]
        depth = sum(int(n) for n in chunk[0::2])
        stamps = [message_sent_at(_decode(raw)) for raw in chunk[1::2] if raw is not None]
        known = [stamp for stamp in stamps if stamp is not None]
        stats.append(QueueStats(queue, depth, round(now - min(known), 3) if known else None))
    return stats


def queue_purge(queue: str) -> int:
    """Remove every message waiting in ``queue``; returns how many. Unacknowledged
    (running) messages are not touched."""
    with celery_app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        return int(channel.queue_purge(queue) or 0)


def workers_online(timeout: float = 1.0) -> list[str]:
    """Names of the workers that answered a ping within ``timeout`` seconds."""
    replies = celery_app.control.ping(timeout=timeout) or []
    return sorted(name for reply in replies for name in reply)


def delivery_count_increment(task_id: str, retries: int, ttl: int) -> int:
    """Count one more delivery of message (``task_id``, retry number ``retries``).

    The count lives outside the message: a Redis redelivery carries only a boolean
    ``redelivered`` flag, so a message whose run kills its worker would otherwise
    loop forever. A retry is a new message with the same task id, hence the suffix.
    """
    key = f"{DELIVERIES_PREFIX}:{task_id}:{retries}"
    with broker_redis().pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, ttl)
        count, _ = pipe.execute()
    return int(count)


def delivery_count_forget(task_id: str, retries: int) -> None:
    broker_redis().delete(f"{DELIVERIES_PREFIX}:{task_id}:{retries}")


def reset_for_tests() -> None:
    global _client
    _client = None
