"""Publishing to the broker: the web's fast path, and the journal under every Redis publish.

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

Every other publish to a Redis broker is journaled too, with the same envelope
(:func:`kombu_envelope`): the outbox relay builds its batch with :func:`redis_envelope`
and writes it with :func:`workers.journal.journal_push_many` (one round trip), and a
task's own ``apply_async`` (``enqueue``, a retry, a database wait, beat) publishes
through :class:`JournalProducer`, so Celery still builds the message (routing, parent
ids, countdown, signals) and only the last step, kombu's ``LPUSH``, is ours.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
import redis
import structlog
from celery.utils.nodenames import anon_nodename
from django.conf import settings
from kombu import Connection
from kombu.exceptions import KombuError
from kombu.exceptions import OperationalError as BrokerOperationalError
from kombu.utils.json import dumps as kombu_dumps
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.celery import celery_app
from app.errors import ApiError
from workers.broker import broker_is_redis, broker_redis
from workers.journal import journal_push
from workers.signals import stamp_headers

if TYPE_CHECKING:
    from workers.reliable import ReliableTask

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 5
POOL_LIMIT = 64
KWARGS_REPR_LIMIT = 200  # characters of each argument shown in the message's kwargsrepr (logs, flower)
# What a publish raises when the broker is away (refused, dropped, timed out, answering errors).
PUBLISH_ERRORS = (BrokerOperationalError, KombuError, redis.RedisError, OSError)
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
    except PUBLISH_ERRORS as error:
        web_publish_reset()  # drop connections that saw the outage; the next call reconnects
        log.warning("broker_publish_failed", task=task.name, error=f"{type(error).__name__}: {error}")
        raise BrokerUnavailableError(f"{type(error).__name__}: {error}") from error


def redis_envelope(
    task: ReliableTask,
    kwargs: dict[str, Any],
    task_id: str,
    *,
    queue: str | None = None,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The message as the kombu Redis transport stores it: Celery's task message (protocol 2)
    with ``headers`` added, for ``queue`` (the task's by default), in :func:`kombu_envelope`."""
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
    if headers:
        message.headers.update(headers)  # before the stamp, as Celery's send_task_message does
    stamp_headers(message.headers)
    return kombu_envelope(orjson.dumps(message.body), message.headers, message.properties, queue or task.queue)


def kombu_envelope(body: bytes, headers: dict[str, Any], properties: dict[str, Any], queue: str) -> dict[str, Any]:
    """kombu's Redis envelope around a JSON task message (``Producer.publish`` to the default
    exchange, then ``Channel.basic_publish``): base64 body, delivery info, priority 0."""
    return {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }


class _BrokerErrors:
    """The one thing Celery's ``send_task`` asks of a producer's connection: broker errors
    raised as kombu's ``OperationalError``, as a kombu connection raises them."""

    @contextmanager
    def _reraise_as_library_errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise BrokerOperationalError(f"{type(error).__name__}: {error}") from error


class JournalProducer:
    """What a task's ``apply_async`` publishes through on a Redis broker (``journaled``).

    Celery's ``send_task_message`` calls ``publish`` as it calls kombu's
    ``Producer.publish``; this writes kombu's envelope with the journal entry in one script
    (``journal_push``), on this process's broker client. Only what ``journaled`` lets
    through reaches it: the default exchange, JSON, no compression, priority 0.
    """

    connection = _BrokerErrors()

    def publish(
        self,
        body: Any,
        routing_key: str | None = None,
        delivery_mode: int | None = None,
        mandatory: bool = False,
        immediate: bool = False,
        priority: int | None = 0,
        content_type: str | None = None,
        content_encoding: str | None = None,
        serializer: str | None = None,
        headers: dict[str, Any] | None = None,
        compression: str | None = None,
        exchange: Any = None,
        retry: bool = False,
        retry_policy: dict[str, Any] | None = None,
        declare: Any = None,
        expiration: float | None = None,
        timeout: float | None = None,
        confirm_timeout: float | None = None,
        **properties: Any,
    ) -> None:
        if exchange or priority or compression or serializer not in (None, "json") or not routing_key:
            raise NotImplementedError(
                f"journaled publish: exchange={exchange!r} priority={priority!r} compression={compression!r} "
                f"serializer={serializer!r} routing_key={routing_key!r}"
            )
        if expiration is not None:
            properties["expiration"] = str(int(expiration * 1000))  # as kombu's Producer.publish
        envelope = kombu_envelope(kombu_dumps(body).encode(), headers or {}, properties, routing_key)
        journal_push(broker_redis(), routing_key, envelope)


_JOURNAL_PRODUCER = JournalProducer()
_KOMBU_ONLY = ("connection", "exchange", "compression", "serializer")


def journaled(options: dict[str, Any]) -> dict[str, Any]:
    """``apply_async`` options that publish through the journal on a Redis broker; on another
    broker, or for options the journal's envelope does not carry (an explicit connection,
    exchange, compression, serializer, a priority), ``options`` unchanged: kombu's path."""
    if not broker_is_redis() or any(options.get(name) for name in _KOMBU_ONLY) or options.get("priority"):
        return options
    return {**options, "producer": _JOURNAL_PRODUCER}


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
