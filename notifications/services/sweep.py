"""The due-deliveries sweep: retries scheduled in PostgreSQL reach a worker.

A delivery waits in ``next_attempt_at`` (no long Celery countdown on Redis). Every 2 s
the sweep claims up to 500 due rows with ``SELECT … FOR UPDATE SKIP LOCKED`` (several
beat-triggered sweeps skip each other's rows), stamps ``dispatched_at`` and, after the
commit, publishes one drain per endpoint they belong to (``delivery.endpoint_drain``
claims the endpoint's due deliveries, these among them). A publish lost with its process
leaves the stamp, which expires after ``WEBHOOK_REDISPATCH_SECONDS``; a publish the broker
refused (it is away) clears the stamps of the endpoint's due rows at once, so the first sweep
after the broker's return publishes them. A ``sending`` delivery whose lease ran out (its
worker was killed) is published again too, and its claim re-sends the same event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from notifications.models import Delivery
from workers.publish import PUBLISH_ERRORS

log = structlog.get_logger(__name__)

SWEEP_BATCH = 500


def deliveries_due_claim(*, limit: int = SWEEP_BATCH) -> list[int]:
    """Stamp up to ``limit`` due deliveries no task holds; returns their endpoints' ids."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_REDISPATCH_SECONDS)
    due = Q(state=Delivery.State.PENDING, next_attempt_at__lte=now) & (
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale)
    )
    orphaned = Q(state=Delivery.State.SENDING, lease_until__lt=now) & (
        Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=F("lease_until")) | Q(dispatched_at__lt=stale)
    )
    with transaction.atomic():
        rows = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(due | orphaned)
            .order_by("next_attempt_at")
            .values_list("pk", "endpoint_id")[:limit]
        )
        Delivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(dispatched_at=now)
    return sorted({endpoint_id for _, endpoint_id in rows})


def drains_publish(*, endpoint_ids: Iterable[int], reason: str) -> None:
    """Publish one drain per endpoint.

    Not durable by itself: the endpoints' due rows were stamped ``dispatched_at`` when they
    became due, and a publish lost without a word (its process died first) leaves that stamp to
    expire, after which the sweep publishes again. A publish the broker refused clears the
    stamps of the due rows of every endpoint not yet published, so the sweep's first run once
    the broker is back publishes them (a drain too many finds nothing to claim)."""
    from notifications.tasks import endpoint_drain

    stamp = uuid.uuid4().hex[:12]
    ordered = sorted(set(endpoint_ids))
    for number, endpoint_id in enumerate(ordered):
        try:
            endpoint_drain.enqueue(
                endpoint_id=endpoint_id, idempotency_key=f"webhook-drain:{endpoint_id}:{reason}:{stamp}"
            )
        except PUBLISH_ERRORS as error:
            unpublished = ordered[number:]
            Delivery.objects.filter(
                endpoint_id__in=unpublished, state=Delivery.State.PENDING, dispatched_at__isnull=False
            ).update(dispatched_at=None)
            log.warning(
                "webhook_drains_unpublished", reason=reason, endpoints=len(unpublished), error=repr(error)[:300]
            )
            return


def drains_publish_after_commit(*, endpoint_ids: list[int], reason: str) -> None:
    """:func:`drains_publish` once the current transaction commits; an error there is logged
    (``robust``) and left to the sweep, never raised into the committed caller."""
    if endpoint_ids:
        transaction.on_commit(lambda: drains_publish(endpoint_ids=endpoint_ids, reason=reason), robust=True)


def deliveries_sweep() -> int:
    """Publish a drain for each endpoint with due deliveries no task holds; returns how many."""
    endpoint_ids = deliveries_due_claim()
    drains_publish(endpoint_ids=endpoint_ids, reason="sweep")
    return len(endpoint_ids)
