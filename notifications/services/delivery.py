"""One attempt of one webhook delivery: claim, sign and POST, record.

The claim is a conditional UPDATE that must change exactly one row (a due ``pending``
delivery, or a ``sending`` one whose lease expired because its worker died), taken
under the endpoint's row lock so the per-endpoint concurrency limit and the circuit
breaker are checked against the deliveries actually in flight. That lock is ``FOR NO KEY
UPDATE``: a plain ``FOR UPDATE`` also blocks the foreign-key checks of every fan-out
inserting deliveries for the endpoint, which then queued behind its attempts. The POST happens
outside any transaction; its outcome is recorded in one transaction with the attempt
row. A re-sent delivery carries the same ``webhook-id`` (the event's) and the same
body; ``webhook-timestamp`` is the real time of each send.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from app import outbound_http
from notifications.envelope import envelope_body
from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint
from notifications.schedule import Verdict, answer_verdict, retry_delay
from notifications.services.endpoints import endpoint_secrets
from notifications.services.health import endpoint_record_failure, endpoint_record_gone, endpoint_record_success
from notifications.signing import signed_headers

log = structlog.get_logger(__name__)

DRAIN_SECONDS = 5.0  # a drain's last attempt may add 15 s: within the task's 25 s soft limit
EXCERPT_CHARS = 1000


@dataclass(frozen=True)
class Claimed:
    delivery: Delivery
    url: str
    secrets: list[str]
    body: bytes


def _claimable(now: datetime) -> Q:
    return Q(state=Delivery.State.PENDING, next_attempt_at__lte=now) | Q(
        state=Delivery.State.SENDING, lease_until__lt=now
    )


@transaction.atomic
def delivery_claim(*, delivery_id: int) -> Claimed | None:
    """Claim one attempt of the delivery, or ``None`` (not due, done, or postponed because its
    endpoint is at its concurrency limit or its circuit is open)."""
    now = timezone.now()
    delivery = Delivery.objects.select_related("event").filter(pk=delivery_id).filter(_claimable(now)).first()
    if delivery is None:
        return None
    if _in_flight(delivery.endpoint_id, now) >= settings.WEBHOOK_ENDPOINT_CONCURRENCY:
        # Busy at any limit, seen without queueing for the endpoint's lock behind its slot
        # holders: they drain this delivery next (it stays due), or the sweep hands it back.
        _leave_to_the_drain(Delivery.objects.filter(pk=delivery.pk, state=Delivery.State.PENDING))
        return None
    endpoint = WebhookEndpoint.objects.select_for_update(no_key=True).get(pk=delivery.endpoint_id)
    return _claim(endpoint, delivery, now)


@transaction.atomic
def delivery_claim_next(*, endpoint_id: int) -> Claimed | None:
    """Claim the endpoint's longest-due delivery, or ``None`` (none due, or the endpoint is
    busy, open-circuited or disabled). Under the endpoint's row lock, as every claim is."""
    now = timezone.now()
    endpoint = WebhookEndpoint.objects.select_for_update(no_key=True).get(pk=endpoint_id)
    delivery = (
        Delivery.objects.select_related("event")
        .filter(endpoint_id=endpoint_id)
        .filter(_claimable(now))
        .order_by("next_attempt_at")
        .first()
    )
    if delivery is None:
        return None
    return _claim(endpoint, delivery, now)


def _claim(endpoint: WebhookEndpoint, delivery: Delivery, now: datetime) -> Claimed | None:
    """The claim proper; the caller holds ``endpoint``'s row lock."""
    rows = Delivery.objects.filter(pk=delivery.pk).filter(_claimable(now))
    if not endpoint.enabled:
        rows.update(state=Delivery.State.HELD)
        return None
    if endpoint.circuit_open_until and endpoint.circuit_open_until > now:
        pending = rows.filter(state=Delivery.State.PENDING)
        pending.update(next_attempt_at=endpoint.circuit_open_until, dispatched_at=None)
        return None
    if _in_flight(endpoint.pk, now) >= _concurrency(endpoint):
        _leave_to_the_drain(rows.filter(state=Delivery.State.PENDING))
        return None
    lease_until = now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    if rows.update(state=Delivery.State.SENDING, lease_until=lease_until, attempts=delivery.attempts + 1) != 1:
        return None
    delivery.state, delivery.lease_until, delivery.attempts = Delivery.State.SENDING, lease_until, delivery.attempts + 1
    return Claimed(
        delivery=delivery, url=endpoint.url, secrets=endpoint_secrets(endpoint), body=envelope_body(delivery.event)
    )


def _in_flight(endpoint_id: int, now: datetime) -> int:
    return Delivery.objects.filter(endpoint_id=endpoint_id, state=Delivery.State.SENDING, lease_until__gte=now).count()


def _leave_to_the_drain(pending: QuerySet[Delivery]) -> None:
    """A delivery whose endpoint is busy stays due: the attempt that frees a slot claims it
    next (``delivery_attempt_and_drain``); with no task holding it (``dispatched_at`` cleared)
    the sweep publishes it again if no attempt does."""
    pending.update(dispatched_at=None)


def _concurrency(endpoint: WebhookEndpoint) -> int:
    if endpoint.consecutive_failures >= settings.WEBHOOK_CIRCUIT_FAILURES:
        return 1  # half-open: one probe at a time
    return int(settings.WEBHOOK_ENDPOINT_CONCURRENCY)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    excerpt: str
    duration_ms: int
    error: str
    verdict: Verdict


def delivery_post(claimed: Claimed) -> Outcome:
    """Sign and POST; never raises for the endpoint's failures (they are the outcome)."""
    message_id = claimed.delivery.event.public_id
    headers = signed_headers(
        secrets=claimed.secrets, message_id=message_id, timestamp=int(time.time()), body=claimed.body
    )
    started = time.monotonic()
    try:
        response = outbound_http.post(claimed.url, body=claimed.body, headers=headers)
    except outbound_http.OutboundError as error:
        duration = round((time.monotonic() - started) * 1000)
        outcome = "permanent" if error.kind == "private_address" else "retry"
        return Outcome(None, "", duration, f"{error.kind}: {error}"[:500], Verdict(outcome))
    excerpt = response.body.decode("utf-8", "replace")[:EXCERPT_CHARS]
    verdict = answer_verdict(response.status, response.headers.get("retry-after"))
    return Outcome(response.status, excerpt, response.duration_ms, "", verdict)


@transaction.atomic
def delivery_record(*, claimed: Claimed, outcome: Outcome) -> Delivery:
    """Store the attempt and move the delivery on: succeeded, retried on the schedule
    (or after Retry-After, whichever is later), or failed (permanent, or the last attempt)."""
    delivery = Delivery.objects.select_for_update().get(pk=claimed.delivery.pk)
    number = claimed.delivery.attempts
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=number,
        status_code=outcome.status_code,
        response_excerpt=outcome.excerpt,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        outcome=outcome.verdict.outcome,
    )
    if delivery.state != Delivery.State.SENDING or delivery.attempts != number:
        return delivery  # another claim took over after our lease expired; it decides
    now = timezone.now()
    verdict = outcome.verdict
    if verdict.outcome == "succeeded":
        delivery.state, delivery.finished_at = Delivery.State.SUCCEEDED, now
        endpoint_record_success(endpoint_id=delivery.endpoint_id)
    elif verdict.outcome == "permanent":
        delivery.state, delivery.finished_at = Delivery.State.FAILED, now
    else:
        endpoint = WebhookEndpoint.objects.select_for_update(no_key=True).get(pk=delivery.endpoint_id)
        if verdict.outcome == "gone":
            delivery.state, delivery.finished_at = Delivery.State.FAILED, now
            endpoint_record_gone(endpoint=endpoint)
        else:
            _schedule_retry(delivery, verdict, now)
            endpoint_record_failure(endpoint=endpoint)
    delivery.lease_until = None
    delivery.save(update_fields=["state", "finished_at", "next_attempt_at", "dispatched_at", "lease_until"])
    log.info(
        "webhook_attempt",
        delivery_id=delivery.pk,
        attempt=number,
        status=outcome.status_code,
        outcome=verdict.outcome,
        state=delivery.state,
        duration_ms=outcome.duration_ms,
    )
    return delivery


def _schedule_retry(delivery: Delivery, verdict: Verdict, now: datetime) -> None:
    delay = retry_delay(delivery.attempts)
    if delay is None:
        delivery.state, delivery.finished_at = Delivery.State.FAILED, now
        return
    if verdict.retry_after is not None:
        delay = max(delay, timedelta(seconds=verdict.retry_after))
    delivery.state = Delivery.State.PENDING
    delivery.next_attempt_at = now + delay
    delivery.dispatched_at = None


def delivery_attempt(*, delivery_id: int) -> Delivery | None:
    """Claim, send and record one attempt; ``None`` when there was nothing to claim."""
    claimed = delivery_claim(delivery_id=delivery_id)
    if claimed is None:
        return None
    return delivery_record(claimed=claimed, outcome=delivery_post(claimed))


def delivery_attempt_and_drain(*, delivery_id: int) -> int:
    """One attempt of the delivery, then, while each attempt succeeds and for at most
    ``DRAIN_SECONDS``, attempts of the same endpoint's other due deliveries: the slot an
    attempt frees goes straight to the next delivery waiting for it, not to a task the sweep
    publishes seconds later. Returns how many attempts were made. At most one attempt past
    the time box (15 s of HTTP), so the task's limits hold; a kill loses nothing (each
    claimed delivery has its lease, the rest stay due)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    delivery = delivery_attempt(delivery_id=delivery_id)
    made = 0 if delivery is None else 1
    while delivery is not None and delivery.state == Delivery.State.SUCCEEDED and time.monotonic() < deadline:
        if not _any_due(delivery.endpoint_id):  # the usual answer, without the claim's transaction and lock
            break
        claimed = delivery_claim_next(endpoint_id=delivery.endpoint_id)
        if claimed is None:
            break
        delivery = delivery_record(claimed=claimed, outcome=delivery_post(claimed))
        made += 1
    return made


def _any_due(endpoint_id: int) -> bool:
    return Delivery.objects.filter(endpoint_id=endpoint_id).filter(_claimable(timezone.now())).exists()
