"""What a dead letter needs to know about the run that failed, wherever Celery reports it.

A task body that raises is reported in its pool process, where ``task.request`` is
the message's own request. A task that hits its hard time limit is killed with its
pool process, and Celery 5.7 calls ``on_failure`` in the worker's main process,
where ``task.request`` belongs to no message: the headers (outbox row, request id,
retry number) and the start time are only on the worker's ``Request``.
:class:`HardLimitRequest` (the reliable task's request class) exposes that request
while Celery runs the failure hooks of a hard time limit, so a time-out is recorded
like any other failure: its outbox row is marked failed (a replay's row too, whose
key is not the message's idempotency key) and its log line has the same fields.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from celery.worker.request import Request

_hard_limit_request: ContextVar[Request | None] = ContextVar("hard_limit_request", default=None)

STARTED_AT = "sf_started_monotonic"
"""Attribute of the task request holding when the body started (``time.monotonic``)."""


class HardLimitRequest(Request):  # type: ignore[misc]
    def on_timeout(self, soft: bool, timeout: float) -> None:
        """Celery's handling, with this request visible to ``failed_run`` meanwhile."""
        token = _hard_limit_request.set(None if soft else self)
        try:
            super().on_timeout(soft, timeout)
        finally:
            _hard_limit_request.reset(token)


@dataclass(frozen=True)
class FailedRun:
    retries: int
    outbox_id: int | None
    request_id: str | None
    duration: float | None
    in_task_process: bool
    """True when reported in the process that ran the body (not after a hard time limit)."""


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def failed_run(task_request: Any, task_id: str) -> FailedRun:
    """The failed run of message ``task_id``, from the task's request or the worker's."""
    if task_request.id == task_id:
        started = getattr(task_request, STARTED_AT, None)
        return FailedRun(
            retries=task_request.retries or 0,
            outbox_id=_int_or_none(task_request.get("outbox_id")),
            request_id=task_request.get("request_id"),
            duration=None if started is None else time.monotonic() - started,
            in_task_process=True,
        )
    worker_request = _hard_limit_request.get()
    if worker_request is None or worker_request.id != task_id:
        return FailedRun(retries=0, outbox_id=None, request_id=None, duration=None, in_task_process=False)
    headers = worker_request.request_dict
    started_at = worker_request.time_start  # wall clock, set when the pool took the task
    return FailedRun(
        retries=headers.get("retries") or 0,
        outbox_id=_int_or_none(headers.get("outbox_id")),
        request_id=headers.get("request_id"),
        duration=time.time() - started_at if started_at else None,
        in_task_process=False,
    )
