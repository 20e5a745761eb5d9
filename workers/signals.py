"""Celery signal receivers, connected by ``WorkersConfig.ready``.

Every published message gets a ``sent_at`` header (Celery messages carry no
publish time; queue age in ``manage.py queues`` and ``/metrics`` reads it) and
the id of the web request or task that published it, so the worker's log lines
carry the same ``request_id`` as the request that caused them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import structlog
from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from app.request_context import current_request_id

log = structlog.get_logger(__name__)


def stamp_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    headers["sent_at"] = time.time()
    request_id = current_request_id()
    if request_id and not headers.get("request_id"):
        headers["request_id"] = request_id


def check_limits_on_start(**_: Any) -> None:
    from workers.limits import visibility_timeout_problems

    for problem in visibility_timeout_problems():
        log.warning("visibility_timeout_too_short", problem=problem)


QUIETED_LOGGERS = ("celery.app.trace", "celery.worker.strategy")
"""Celery's own per-task "received" / "succeeded" lines repeat ours (workers.reliable),
which carry the idempotency key and request id; keep only their warnings and errors."""


def check_broker_config_on_start(**_: Any) -> None:
    """A worker does not start on a broker that would lose its messages (``workers.broker_config``)."""
    from workers.broker_config import broker_config_exit

    broker_config_exit("worker")


def close_old_connections(**_: Any) -> None:
    """Django's per-request database hygiene, per task: drop a connection past
    ``CONN_MAX_AGE`` or in error, and check health before the next use."""
    from django.db import close_old_connections as django_close_old_connections

    django_close_old_connections()


def recovery_start(**_: Any) -> None:
    """Dead-consumer recovery runs in every worker's main process (``workers.recovery``)."""
    from workers.broker import broker_is_redis
    from workers.recovery import recovery_start as start

    if broker_is_redis():
        start()


def recovery_stop(**_: Any) -> None:
    from workers.recovery import recovery_stop as stop

    stop()


def flush_metrics(**_: Any) -> None:
    from app.metrics import metrics_flush

    metrics_flush()


def connect() -> None:
    for name in QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    before_task_publish.connect(stamp_headers, dispatch_uid="workers.stamp_headers", weak=False)
    worker_init.connect(check_broker_config_on_start, dispatch_uid="workers.check_broker_config", weak=False)
    worker_ready.connect(check_limits_on_start, dispatch_uid="workers.check_limits", weak=False)
    worker_ready.connect(recovery_start, dispatch_uid="workers.recovery_start", weak=False)
    worker_shutdown.connect(recovery_stop, dispatch_uid="workers.recovery_stop", weak=False)
    task_prerun.connect(close_old_connections, dispatch_uid="workers.db_prerun", weak=False)
    task_postrun.connect(close_old_connections, dispatch_uid="workers.db_postrun", weak=False)
    worker_process_shutdown.connect(flush_metrics, dispatch_uid="workers.flush_metrics_child", weak=False)
    worker_shutdown.connect(flush_metrics, dispatch_uid="workers.flush_metrics_main", weak=False)
