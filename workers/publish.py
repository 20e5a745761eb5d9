"""Publishing from a web request: fast, no retries, a clear 503 when the broker is away.

A request that must hand work to a queue before it answers (analytics ingestion
answers 202 only once the batch is in the broker) cannot wait for Celery's
default publish retries or a hung socket. :func:`publish_or_unavailable` uses
its own connections with ``CELERY_WEB_PUBLISH_TIMEOUT`` (0.5 s) for connect and
socket operations and no retries: an outage costs one timeout and raises
:class:`BrokerUnavailableError`, rendered as ``503 broker_unavailable`` with
``Retry-After``. The caller keeps the work (the JS insert resends the batch).

On a Redis broker the message is one ``LPUSH`` of the envelope the kombu Redis
transport writes, around the task message Celery builds (``amqp.as_task_v2``), sent
in one script with its publish-journal entry (``workers.journal``, which keeps a
worker killed mid-``BRPOP`` from losing it):
Celery's ``apply_async`` plus kombu's producer cost ~1.1 ms of CPU per publish,
more than the rest of an events request, against ~0.2 ms for this (measured with
``bench/ingest_bench.py``). Celery still owns the task protocol; this module owns
only the transport envelope, and ``workers/tests/test_web_publish.py`` checks it
against kombu's own, field by field, and runs it through a real worker. Other
brokers (RabbitMQ) take the kombu path.

Work that must survive an outage without the caller's help goes through the
outbox instead (``workers.outbox``): it commits with the business change.
"""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import orjson
import redis
import structlog
from celery.utils.nodenames import anon_nodename
from django.conf import settings
from kombu import Connection
from kombu.exceptions import KombuError
from kombu.exceptions import OperationalError as BrokerOperationalError
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.celery import celery_app
from app.errors import ApiError
from workers.broker import broker_is_redis
from workers.journal import journal_push
from workers.reliable import ReliableTask
from workers.signals import stamp_headers

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 5
POOL_LIMIT = 64
KWARGS_REPR_LIMIT = 200  # characters of each argument shown in the message's kwargsrepr (logs, flower)
_pool: Any = None
_redis: redis.Redis | None = None
_origin: tuple[int, str] | None = None


class BrokerUnavailableError(ApiError):
    """The broker did not take the message within ``CELERY_WEB_PUBLISH_TIMEOUT``."""

    def __init__(self, detail: str) -> None:
        super().__init__("broker_unavailable", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.detail = detail


def publish_or_unavailable(task: ReliableTask, *, idempotency_key: str, **kwargs: Any) -> str:
    """Publish ``task(**kwargs, idempotency_key=…)`` now; return the task id.

    Raises :class:`BrokerUnavailableError` (503 + Retry-After) within about
    ``CELERY_WEB_PUBLISH_TIMEOUT`` seconds when the broker does not accept it.
    """
    kwargs = {**kwargs, "idempotency_key": idempotency_key}
    try:
        if broker_is_redis():
            return _publish_redis(task, kwargs)
        return _publish_kombu(task, kwargs)
    except (BrokerOperationalError, KombuError, redis.RedisError, OSError) as error:
        web_publish_reset()  # drop connections that saw the outage; the next call reconnects
        log.warning("broker_publish_failed", task=task.name, error=f"{type(error).__name__}: {error}")
        raise BrokerUnavailableError(f"{type(error).__name__}: {error}") from error


def redis_envelope(task: ReliableTask, kwargs: dict[str, Any], task_id: str) -> dict[str, Any]:
    """The message as the kombu Redis transport stores it: Celery's task message (protocol 2)
    in kombu's envelope (base64 body, delivery info for the default exchange, priority 0)."""
    message = celery_app.amqp.as_task_v2(
        task_id,
        task.name,
        kwargs=kwargs,
        time_limit=task.time_limit,
        soft_time_limit=task.soft_time_limit,
        ignore_result=task.ignore_result,
        argsrepr="()",
        kwargsrepr=_kwargs_repr(kwargs),
        origin=_origin_name(),
    )
    stamp_headers(message.headers)
    return {
        "body": base64.b64encode(orjson.dumps(message.body)).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": message.headers,
        "properties": {
            **message.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": task.queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


def _publish_redis(task: ReliableTask, kwargs: dict[str, Any]) -> str:
    """Into the queue and the publish journal in one script (see ``workers.journal``)."""
    task_id = str(uuid.uuid4())
    journal_push(_web_redis(), task.queue, redis_envelope(task, kwargs, task_id))
    return task_id


def _publish_kombu(task: ReliableTask, kwargs: dict[str, Any]) -> str:
    timeout = settings.CELERY_WEB_PUBLISH_TIMEOUT
    with _web_pool().acquire(block=True, timeout=timeout) as connection:
        result = task.apply_async(kwargs=kwargs, connection=connection, retry=False)
    return str(result.id)


def _kwargs_repr(kwargs: dict[str, Any]) -> str:
    """Like Celery's, but each value cut short: a batch argument can be 256 KB."""
    shown = ", ".join(f"{name!r}: {_short(value)}" for name, value in kwargs.items())
    return "{" + shown + "}"


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) > KWARGS_REPR_LIMIT:
        return f"<str of {len(value)} characters>"
    return repr(value)


def _origin_name() -> str:
    """Celery's ``gen<pid>@<host>`` origin, computed once per process (after a fork too)."""
    global _origin
    if _origin is None or _origin[0] != os.getpid():
        _origin = (os.getpid(), anon_nodename())
    return _origin[1]


def _web_redis() -> redis.Redis:
    global _redis
    if _redis is None:
        timeout = settings.CELERY_WEB_PUBLISH_TIMEOUT
        _redis = redis.Redis.from_url(
            settings.CELERY_BROKER_URL,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
    return _redis


def _web_pool() -> Any:
    global _pool
    if _pool is None:
        timeout = settings.CELERY_WEB_PUBLISH_TIMEOUT
        options = {
            **celery_app.conf.broker_transport_options,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "max_retries": 0,
        }
        connection = Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options=options)
        _pool = connection.Pool(limit=POOL_LIMIT)
    return _pool


def web_publish_reset() -> None:
    """Close every pooled connection (after an outage, or when settings changed)."""
    global _pool, _redis
    if _pool is not None:
        _pool.force_close_all()
    _pool = None
    if _redis is not None:
        _redis.close()
    _redis = None
