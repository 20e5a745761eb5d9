"""Drains for due email notifications: published after the commit that made rows due, and
again by the sweep for rows whose drain never came.

A notification row is the durable record of its email; a drain message only says "there is
mail to send". So a drain is published straight after the commit (no outbox row and relay
hop per email), up to ``EMAIL_DRAINS_MAX`` of them for a burst (each takes ``CLAIM_BATCH``
rows at a time, so a burst is sent on that many connections at once while the rest of the
notify workers' processes stay free for webhooks). A publish lost without a word (its process
died first) leaves the rows' ``dispatched_at`` stamp to expire (``EMAIL_REDISPATCH_SECONDS``);
one the broker refused clears the due rows' stamps at once. Either way the sweep (beat, every
2 s) then publishes again, as it does for rows whose retry came due and for ``sending`` rows
whose lease ran out (their worker was killed).
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from notifications.models import EmailNotification
from workers.publish import PUBLISH_ERRORS

log = structlog.get_logger(__name__)

CLAIM_BATCH = 50  # rows per claim: a kill mid-claim re-sends at most the one caught in the window
SWEEP_BATCH = 500


def drains_wanted(count: int) -> int:
    """Drains for ``count`` due rows: one per claim's worth, at most ``EMAIL_DRAINS_MAX``."""
    return max(1, min(int(settings.EMAIL_DRAINS_MAX), math.ceil(count / CLAIM_BATCH)))


def drains_publish(*, count: int, reason: str) -> None:
    """Publish the drains for ``count`` due rows (a duplicate finds nothing to claim). If
    the broker refuses one, the due rows' stamps are cleared, so the sweep's
    first run once the broker is back publishes their drains."""
    from notifications.tasks import email_drain

    stamp = uuid.uuid4().hex[:12]
    for number in range(drains_wanted(count)):
        try:
            email_drain.enqueue(idempotency_key=f"email-drain:{reason}:{stamp}:{number}")
        except PUBLISH_ERRORS as error:
            EmailNotification.objects.filter(
                state=EmailNotification.State.PENDING, next_attempt_at__lte=timezone.now(), dispatched_at__isnull=False
            ).update(dispatched_at=None)
            log.warning("email_drains_unpublished", reason=reason, error=repr(error)[:300])
            return


def drains_publish_after_commit(*, count: int) -> None:
    """:func:`drains_publish` once the current transaction commits; an error there is logged
    (``robust``) and left to the sweep, never raised into the committed caller."""
    transaction.on_commit(lambda: drains_publish(count=count, reason="new"), robust=True)


def emails_due_claim(*, limit: int = SWEEP_BATCH) -> int:
    """Stamp up to ``limit`` due rows that no drain was published for lately; returns how many."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.EMAIL_REDISPATCH_SECONDS)
    undispatched = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale)
    due = Q(state=EmailNotification.State.PENDING, next_attempt_at__lte=now) & undispatched
    orphaned = Q(state=EmailNotification.State.SENDING, lease_until__lt=now) & (
        undispatched | Q(dispatched_at__lt=F("lease_until"))
    )
    with transaction.atomic():
        rows = (
            EmailNotification.objects.select_for_update(skip_locked=True)
            .filter(due | orphaned)
            .order_by("next_attempt_at")
            .values("pk")[:limit]
        )
        return EmailNotification.objects.filter(pk__in=rows).update(dispatched_at=now)


def emails_sweep() -> int:
    """Publish drains for the due rows no drain is coming for; returns how many rows."""
    count = emails_due_claim()
    if count:
        drains_publish(count=count, reason="sweep")
    return count
