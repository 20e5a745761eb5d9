"""Publishing from a web request: fast, no retries, a clear 503 when the broker is away.

A request that must hand work to a queue before it answers (analytics ingestion
answers 202 only once the batch is in the broker) cannot wait for Celery's
default publish retries or a hung socket. :func:`publish_or_unavailable` uses
its own connections with ``CELERY_WEB_PUBLISH_TIMEOUT`` (0.5 s) for connect and
socket operations and ``retry=False``: an outage costs one timeout and raises
:class:`BrokerUnavailableError`, rendered as ``503 broker_unavailable`` with
``Retry-After``. The caller keeps the work (the JS insert resends the batch).

Work that must survive an outage without the caller's help goes through the
outbox instead (``workers.outbox``): it commits with the business change.
"""

from __future__ import annotations

from typing import Any

import redis
import structlog
from django.conf import settings
from kombu import Connection
from kombu.exceptions import KombuError
from kombu.exceptions import OperationalError as BrokerOperationalError

from app.celery import celery_app
from app.errors import ApiError
from workers.reliable import ReliableTask

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 5
POOL_LIMIT = 64
_pool: Any = None


class BrokerUnavailableError(ApiError):
    """The broker did not take the message within ``CELERY_WEB_PUBLISH_TIMEOUT``."""

    def __init__(self, detail: str) -> None:
        super().__init__("broker_unavailable", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.detail = detail


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


def publish_or_unavailable(task: ReliableTask, *, idempotency_key: str, **kwargs: Any) -> str:
    """Publish ``task(**kwargs, idempotency_key=…)`` now; return the task id.

    Raises :class:`BrokerUnavailableError` (503 + Retry-After) within about
    ``CELERY_WEB_PUBLISH_TIMEOUT`` seconds when the broker does not accept it.
    """
    timeout = settings.CELERY_WEB_PUBLISH_TIMEOUT
    try:
        with _web_pool().acquire(block=True, timeout=timeout) as connection:
            result = task.apply_async(
                kwargs={**kwargs, "idempotency_key": idempotency_key}, connection=connection, retry=False
            )
    except (BrokerOperationalError, KombuError, redis.RedisError, OSError) as error:
        web_publish_reset()  # drop connections that saw the outage; the next call reconnects
        log.warning("broker_publish_failed", task=task.name, error=f"{type(error).__name__}: {error}")
        raise BrokerUnavailableError(f"{type(error).__name__}: {error}") from error
    return str(result.id)


def web_publish_reset() -> None:
    """Close every pooled connection (after an outage, or when settings changed)."""
    global _pool
    if _pool is not None:
        _pool.force_close_all()
    _pool = None
