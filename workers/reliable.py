"""The reliable task: at-least-once delivery, with the effect guarded elsewhere.

Every task of the project is declared with :func:`reliable_task`, which fixes the
conventions: an explicit name, a queue from :mod:`workers.routing`, soft and
hard time limits, late acknowledgement, re-queue on worker loss, and a required
``idempotency_key`` keyword argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task

from app.celery import celery_app
from workers.routing import Queue


class ReliableTask(Task):  # type: ignore[misc]
    abstract = True
    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True

    def enqueue(self, *, idempotency_key: str, **kwargs: Any) -> Any:
        """Publish with JSON kwargs and the message's idempotency key."""
        return self.apply_async(kwargs={**kwargs, "idempotency_key": idempotency_key})


def reliable_task(
    *,
    name: str,
    queue: Queue,
    soft_time_limit: int,
    time_limit: int,
    **options: Any,
) -> Callable[[Callable[..., Any]], ReliableTask]:
    """Declare a task. The body takes ``idempotency_key`` as a keyword argument."""
    if time_limit <= soft_time_limit:
        raise ValueError(f"{name}: time_limit must exceed soft_time_limit")

    def register(body: Callable[..., Any]) -> ReliableTask:
        task: ReliableTask = celery_app.task(
            name=name,
            base=ReliableTask,
            queue=queue.value,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit,
            **options,
        )(body)
        return task

    return register
