"""Writes of the background-work tables: outbox state, dead letters, replays, purges."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from app.db_availability import database_unreachable
from workers.models import DeadLetter, OutboxMessage
from workers.outbox import EVENT_DISPATCH_TASK, outbox_enqueue_task, subscribers_for
from workers.relay import rows_publish_singly

log = structlog.get_logger(__name__)

OPEN_OUTBOX = (OutboxMessage.Status.PENDING, OutboxMessage.Status.SENT)


class DeadLetterNotReplayableError(Exception):
    """Only an open dead letter can be replayed (a replayed one waits for its outcome)."""


def outbox_mark_done(*, outbox_id: int) -> bool:
    """Mark the outbox row whose message just succeeded as done. Idempotent: a conditional
    update that changes the row at most once; True if this call changed it."""
    changed = OutboxMessage.objects.filter(pk=outbox_id, status__in=OPEN_OUTBOX).update(
        status=OutboxMessage.Status.DONE, done_at=timezone.now()
    )
    return changed == 1


@transaction.atomic
def deadletter_record(
    *,
    task_name: str,
    task_id: str,
    queue: str,
    kwargs: dict[str, Any],
    exception: str,
    traceback: str,
    attempts: int,
    outbox_id: int | None = None,
) -> DeadLetter:
    """Store a message that will not be retried: one row per (task, idempotency key).

    A message that fails again after a replay updates its row (``failures`` + 1, open
    again) instead of adding one. Its outbox row, if any, is marked failed in the same
    transaction so the relay stops re-publishing it.
    """
    key = str(kwargs.get("idempotency_key") or f"task:{task_id}")
    now = timezone.now()
    letter, created = DeadLetter.objects.select_for_update().get_or_create(
        task_name=task_name,
        idempotency_key=key,
        defaults={
            "task_id": task_id,
            "queue": queue,
            "kwargs": kwargs,
            "retailer_id": _retailer_id(kwargs),
            "exception": exception,
            "traceback": traceback,
            "attempts": attempts,
            "first_failed_at": now,
            "last_failed_at": now,
        },
    )
    if not created:
        letter.task_id, letter.exception, letter.traceback = task_id, exception, traceback
        letter.kwargs, letter.attempts, letter.last_failed_at = kwargs, letter.attempts + attempts, now
        letter.failures += 1
        letter.status = DeadLetter.Status.OPEN
        letter.save()
    rows = Q(idempotency_key=key) | Q(pk=outbox_id) if outbox_id else Q(idempotency_key=key)
    OutboxMessage.objects.filter(rows, status__in=OPEN_OUTBOX).update(status=OutboxMessage.Status.FAILED)
    return letter


def _retailer_id(kwargs: dict[str, Any]) -> int | None:
    value = kwargs.get("retailer_id")
    return value if isinstance(value, int) else None


@transaction.atomic
def deadletter_replay(*, deadletter_id: int, actor: str) -> DeadLetter:
    """Publish an open dead letter's message again, through the outbox (durable).

    The replay carries the original idempotency key, so it passes the same barrier
    as the first run: an effect that did happen is not applied twice.
    Raises :class:`DeadLetterNotReplayableError` unless the letter is open.
    """
    letter = DeadLetter.objects.select_for_update().get(pk=deadletter_id)
    if letter.status != DeadLetter.Status.OPEN:
        raise DeadLetterNotReplayableError(f"dead letter {letter.pk} is {letter.status}, not open")
    letter.replays += 1
    letter.status = DeadLetter.Status.REPLAYED
    letter.last_replayed_at = timezone.now()
    letter.last_replayed_by = actor[:150]
    letter.save(update_fields=["replays", "status", "last_replayed_at", "last_replayed_by"])
    outbox_enqueue_task(
        task_name=letter.task_name,
        kwargs={**letter.kwargs, "idempotency_key": letter.idempotency_key},
        idempotency_key=f"replay:{letter.pk}:{letter.replays}",
    )
    log.info("deadletter_replayed", dead_letter_id=letter.pk, task=letter.task_name, actor=actor)
    return letter


def outbox_purge(*, older_than: timedelta | None = None) -> int:
    """Delete done and failed outbox rows finished before the retention period; returns
    rows deleted. Slices of 5,000 keep each delete's locks short."""
    cutoff = timezone.now() - (older_than or timedelta(seconds=settings.OUTBOX_RETENTION_SECONDS))
    finished = OutboxMessage.objects.filter(
        Q(status=OutboxMessage.Status.DONE, done_at__lt=cutoff)
        | Q(status=OutboxMessage.Status.FAILED, created_at__lt=cutoff)
    )
    deleted = 0
    while True:
        ids = list(finished.values_list("id", flat=True)[:5000])
        if not ids:
            return deleted
        deleted += OutboxMessage.objects.filter(id__in=ids).delete()[0]


@transaction.atomic
def outbox_event_dispatch(*, topic: str, key: str, version: int, payload: dict[str, Any], event_key: str) -> int:
    """Hand one announced event to every subscriber of ``topic`` and mark its row done,
    all in one transaction; returns how many subscribers ran (0 for a duplicate).

    The locked outbox row is the barrier: a redelivered event finds it done and does
    nothing. Zero subscribers means done at once. A subscriber that raises rolls back
    the whole dispatch (every subscriber runs again on the retry, so subscribers
    compare ``version`` per ``key`` and ignore what they have seen).
    """
    row = OutboxMessage.objects.select_for_update().filter(idempotency_key=event_key).first()
    if row is None or row.status == OutboxMessage.Status.DONE:
        log.info("event_already_dispatched", topic=topic, key=key, version=version, known=row is not None)
        return 0
    handlers = subscribers_for(topic)
    for handler in handlers:
        handler([{"topic": topic, "key": key, "version": version, **payload}])
    row.status, row.done_at = OutboxMessage.Status.DONE, timezone.now()
    row.save(update_fields=["status", "done_at"])
    return len(handlers)


@transaction.atomic
def outbox_events_dispatch(*, event_keys: list[str]) -> int:
    """Dispatch a batch of announced events (one relay message); returns how many were done.

    The rows are locked in id order (two overlapping batches cannot deadlock) and those
    already done are skipped, as :func:`outbox_event_dispatch` does for one. Each topic's
    events go to its subscribers together, inside a savepoint: a topic whose subscriber
    raises is rolled back alone and its events are published again one by one once this
    commits (``event_dispatch``: its retries and, at the end, its dead letter name the one
    event at fault), while the rest of the batch is done. An unreachable database is not a
    subscriber's fault: it is raised, and the task waits it out."""
    rows = list(
        OutboxMessage.objects.select_for_update()
        .filter(idempotency_key__in=event_keys, task_name=EVENT_DISPATCH_TASK)
        .exclude(status=OutboxMessage.Status.DONE)
        .order_by("pk")
    )
    by_topic: dict[str, list[OutboxMessage]] = {}
    for row in rows:
        by_topic.setdefault(str(row.kwargs.get("topic", "")), []).append(row)
    done: list[int] = []
    for topic, topic_rows in by_topic.items():
        try:
            with transaction.atomic():
                for handler in subscribers_for(topic):
                    handler([_announced(row) for row in topic_rows])
        except Exception as error:  # any subscriber error sends the topic's events one by one
            if database_unreachable(error):
                raise
            log.warning("events_batch_topic_failed", topic=topic, events=len(topic_rows), error=repr(error)[:300])
            transaction.on_commit(partial(_publish_one_by_one, [row.pk for row in topic_rows]), robust=True)
            continue
        done.extend(row.pk for row in topic_rows)
    OutboxMessage.objects.filter(pk__in=done).update(status=OutboxMessage.Status.DONE, done_at=timezone.now())
    return len(done)


def _announced(row: OutboxMessage) -> dict[str, Any]:
    kwargs = row.kwargs
    return {"topic": kwargs["topic"], "key": kwargs["key"], "version": kwargs["version"], **kwargs["payload"]}


def _publish_one_by_one(outbox_ids: list[int]) -> None:
    """Publish events of a failed batch as single dispatches (a lost publish leaves the rows
    ``sent``: the relay publishes them again)."""
    rows_publish_singly(list(OutboxMessage.objects.filter(pk__in=outbox_ids, status=OutboxMessage.Status.SENT)))
