"""The due-deliveries sweep: retries scheduled in PostgreSQL reach a worker.

A delivery waits in ``next_attempt_at`` (no long Celery countdown on Redis). Every 2 s
the sweep claims up to 500 due rows with ``SELECT … FOR UPDATE SKIP LOCKED`` (several
beat-triggered sweeps skip each other's rows), stamps ``dispatched_at`` and, after the
commit, publishes one attempt each. A publish lost with its process leaves the stamp,
which expires after ``WEBHOOK_REDISPATCH_SECONDS``; a ``sending`` delivery whose lease ran out
(its worker was killed) is published again too, and its claim re-sends the same event.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from notifications.models import Delivery

SWEEP_BATCH = 500


def deliveries_due_claim(*, limit: int = SWEEP_BATCH) -> list[int]:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_REDISPATCH_SECONDS)
    due = Q(state=Delivery.State.PENDING, next_attempt_at__lte=now) & (
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale)
    )
    orphaned = Q(state=Delivery.State.SENDING, lease_until__lt=now) & (
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=F("lease_until")) | Q(dispatched_at__lt=stale)
    )
    with transaction.atomic():
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(due | orphaned)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        Delivery.objects.filter(pk__in=ids).update(dispatched_at=now)
    return ids


def deliveries_publish(*, ids: list[int], reason: str) -> None:
    """Publish one attempt per delivery id. Not durable by itself: each row was stamped
    ``dispatched_at`` in the transaction that made it due, and a publish that never reaches
    the broker leaves that stamp to expire, after which the sweep publishes the row again."""
    from notifications.tasks import delivery_send

    stamp = int(timezone.now().timestamp())
    for delivery_id in ids:
        delivery_send.enqueue(delivery_id=delivery_id, idempotency_key=f"webhook-{reason}:{delivery_id}:{stamp}")


def deliveries_publish_after_commit(*, ids: list[int], reason: str) -> None:
    """:func:`deliveries_publish` once the current transaction commits; a broker error is
    logged there (``robust``) and left to the sweep, never raised into the committed caller."""
    if ids:
        transaction.on_commit(lambda: deliveries_publish(ids=ids, reason=reason), robust=True)


def deliveries_sweep() -> int:
    """Publish one attempt per due delivery; returns how many were published."""
    ids = deliveries_due_claim()
    deliveries_publish(ids=ids, reason="sweep")
    return len(ids)
