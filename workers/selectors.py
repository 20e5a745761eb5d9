"""Reads of the background-work tables: dead letters and the outbox backlog."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from workers.models import DeadLetter, OutboxMessage


def deadletter_list(*, status: str | None = None, task_name: str | None = None) -> QuerySet[DeadLetter]:
    """Dead letters, most recent failure first."""
    letters = DeadLetter.objects.order_by("-last_failed_at", "-id")
    if status:
        letters = letters.filter(status=status)
    if task_name:
        letters = letters.filter(task_name=task_name)
    return letters


def deadletter_get(*, deadletter_id: int) -> DeadLetter | None:
    return DeadLetter.objects.filter(pk=deadletter_id).first()


def deadletter_open_count() -> int:
    return DeadLetter.objects.filter(status=DeadLetter.Status.OPEN).count()


@dataclass(frozen=True)
class OutboxBacklog:
    counts: dict[str, int]
    oldest_pending_age_seconds: float | None


def outbox_backlog() -> OutboxBacklog:
    """Rows not done yet, by status, and the age of the oldest unpublished row."""
    open_rows = OutboxMessage.objects.filter(status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.SENT])
    counts = dict.fromkeys((OutboxMessage.Status.PENDING, OutboxMessage.Status.SENT), 0)
    for row in open_rows.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    oldest = open_rows.filter(status=OutboxMessage.Status.PENDING).aggregate(oldest=Min("created_at"))["oldest"]
    age = (timezone.now() - oldest).total_seconds() if oldest else None
    return OutboxBacklog(counts={str(k): v for k, v in counts.items()}, oldest_pending_age_seconds=age)
