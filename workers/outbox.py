"""The transactional outbox: announce work in the same transaction as the change.

Two kinds of row, one table:

* :func:`outbox_enqueue_task` — a task to run (name + JSON kwargs).
* :func:`outbox_announce` — an event (``price.changed``…) handed by a dispatcher
  task to every function registered with :func:`outbox_subscriber` for its topic.
  The relay packs the events it publishes for the first time into one dispatch
  message per queue (``workers.events_dispatch``, up to ``OUTBOX_DISPATCH_BATCH``),
  so a burst of events costs one task and one transaction per batch, not per event.

Both must be called inside the ``transaction.atomic`` block of the business
change; the relay (``workers.relay``, ``manage.py outbox_relay``) publishes
committed rows, so a broker outage delays work but loses none. The task runs with
``idempotency_key`` = the row's key (unless ``kwargs`` carries its own, as a
dead-letter replay does); its row is marked done when it succeeds. An event row
is marked done by the dispatcher in the transaction that runs its subscribers.
No ordering is promised: payloads carry a per-key ``version``.

A row keeps the id of the request (or task) that wrote it (``X-Request-ID``,
``app.request_context``), and the relay publishes it with the message, as a direct
publish carries it (``workers.signals``): repricing shards started by ``POST
/v1/rules`` log the request id of that POST.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction

from app.request_context import current_request_id
from workers.models import OutboxMessage
from workers.routing import Queue

EVENT_DISPATCH_TASK = "workers.event_dispatch"
EVENTS_DISPATCH_TASK = "workers.events_dispatch"

Subscriber = Callable[[dict[str, Any]], None]
BatchSubscriber = Callable[[list[dict[str, Any]]], None]
_subscribers: dict[str, list[BatchSubscriber]] = {}
_dispatch_queues: dict[str, Queue] = {}


class OutsideTransactionError(RuntimeError):
    """An outbox write outside ``transaction.atomic`` would not be atomic with the change."""


def _require_atomic() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise OutsideTransactionError("write outbox rows inside the transaction of the change they announce")


def outbox_enqueue_task(*, task_name: str, kwargs: dict[str, Any], idempotency_key: str) -> None:
    """Queue ``task_name(**kwargs, idempotency_key=…)`` to run once this transaction commits.

    A second call with the same key leaves the first row as it is (its request id too). One
    ``INSERT … ON CONFLICT DO NOTHING``: ``get_or_create`` costs a SELECT and a savepoint
    around its INSERT, four round trips per row in a business transaction that may write
    thousands (measured with ``bench/notifications_bench.py``)."""
    _require_atomic()
    OutboxMessage.objects.bulk_create(
        [
            OutboxMessage(
                idempotency_key=idempotency_key,
                task_name=task_name,
                kwargs=kwargs,
                request_id=current_request_id(),
            )
        ],
        ignore_conflicts=True,
    )


def outbox_announce(*, topic: str, payload: dict[str, Any], key: str, version: int) -> None:
    """Announce an event; subscribers compare ``version`` per ``key`` and drop stale ones."""
    outbox_enqueue_task(
        task_name=EVENT_DISPATCH_TASK,
        kwargs={"topic": topic, "key": key, "version": version, "payload": payload},
        idempotency_key=f"event:{topic}:{key}:{version}",
    )


def outbox_subscriber(
    topic: str, *, queue: Queue | None = None, many: bool = False
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a handler for ``topic``. It runs inside the dispatcher's transaction,
    so it may write rows (and outbox rows) but must do no network I/O.

    ``queue`` is where the topic's dispatcher runs (``default`` unless a subscriber names one):
    notifications dispatch on their own worker group, so a pricing backlog on ``default``
    never delays a webhook. The subscribers of one topic must not name two queues.

    The handler gets the payload with ``topic``, ``key`` and ``version`` added (payload
    fields win); with ``many=True`` it gets a list of such events of its topic at once (the
    events of one dispatch message), so it can write them in bulk. It may run again for the
    same event (a failure of any subscriber of the topic rolls back and retries them all),
    so it compares ``version`` per ``key``. The module holding it must be imported by the
    worker (``<app>/tasks.py`` or an app's ``ready()``)."""

    if queue is not None and _dispatch_queues.setdefault(topic, queue) != queue:
        raise ValueError(f"{topic}: dispatched on {_dispatch_queues[topic]}, not also on {queue}")

    def register(handler: Callable[..., None]) -> Callable[..., None]:
        _subscribers.setdefault(topic, []).append(handler if many else _one_by_one(handler))
        return handler

    return register


def _one_by_one(handler: Subscriber) -> BatchSubscriber:
    def each(events: list[dict[str, Any]]) -> None:
        for event in events:
            handler(event)

    return each


def subscribers_for(topic: str) -> list[BatchSubscriber]:
    """The topic's handlers, each taking a list of events (a one-event handler is wrapped)."""
    return list(_subscribers.get(topic, ()))


def dispatch_queue_for(topic: str) -> Queue | None:
    """The queue a subscriber named for ``topic``'s dispatcher, or ``None`` (the task's own)."""
    return _dispatch_queues.get(topic)
