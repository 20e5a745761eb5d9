"""Webhook attempts: an endpoint's due deliveries claimed as one slot, signed and POSTed in
turn over one kept-alive connection, recorded together.

A claim (:func:`deliveries_claim`) is taken under the endpoint's row lock, so the
per-endpoint concurrency limit and the circuit breaker are checked against the slots
actually in flight. It marks up to ``CLAIM_BATCH`` due deliveries (``pending`` and due, or
``sending`` with an expired lease: their worker died) ``sending`` under one lease and one
slot token. A slot is one connection's worth of work: its deliveries are POSTed one after
the other, so ``WEBHOOK_ENDPOINT_CONCURRENCY`` bounds the requests an endpoint sees at once,
however many deliveries a slot holds. The endpoint lock is ``FOR NO KEY UPDATE``: a plain
``FOR UPDATE`` also blocks the foreign-key checks of every fan-out inserting deliveries for
the endpoint. The POSTs happen outside any transaction; the slot's outcomes are recorded in
one transaction (:func:`slot_record`): the successes in bulk, the first failure (which ends
the slot: the endpoint is probably in trouble) on the retry schedule, and the deliveries not
reached put back as they were. A re-sent delivery carries the same ``webhook-id`` (the
event's) and the same body; ``webhook-timestamp`` is the real time of each send.

The claims and records commit without waiting for the WAL flush (``app.unflushed_commits``).
A kill between a POST and the slot's record re-sends the slot's deliveries once its lease
expires: at least once, never lost, ``webhook-id`` unchanged for the receiver to drop.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from app import outbound_http
from app.unflushed_commits import commits_unflushed
from notifications.envelope import envelope_body
from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint
from notifications.schedule import Verdict, answer_verdict, retry_delay
from notifications.services.endpoints import endpoint_secrets
from notifications.services.health import endpoint_record_failure, endpoint_record_gone, endpoint_record_success
from notifications.services.sweep import drains_publish
from notifications.signing import signed_headers

log = structlog.get_logger(__name__)

# A drain claims slots for this long; its last slot may add one 15 s POST to it, so a
# slot never outlives its lease (WEBHOOK_LEASE_SECONDS, 30 s) and the task's 25 s soft limit.
DRAIN_SECONDS = 5.0
CLAIM_BATCH = 50  # deliveries per slot: a kill mid-slot re-sends at most this many
ENDS_THE_SLOT = ("retry", "gone")
EXCERPT_CHARS = 1000


@dataclass(frozen=True)
class Slot:
    """Deliveries of one endpoint claimed together, to be POSTed in turn."""

    endpoint_id: int
    url: str
    secrets: list[str]
    token: str
    deliveries: list[Delivery]


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    excerpt: str
    duration_ms: int
    error: str
    verdict: Verdict


def _claimable(now: datetime) -> Q:
    return Q(state=Delivery.State.PENDING, next_attempt_at__lte=now) | Q(
        state=Delivery.State.SENDING, lease_until__lt=now
    )


def _slots_in_flight(endpoint_id: int, now: datetime) -> int:
    return (
        Delivery.objects.filter(endpoint_id=endpoint_id, state=Delivery.State.SENDING, lease_until__gte=now)
        .values("slot")
        .distinct()
        .count()
    )


def _concurrency(endpoint: WebhookEndpoint) -> int:
    if endpoint.consecutive_failures >= settings.WEBHOOK_CIRCUIT_FAILURES:
        return 1  # half-open: one probe at a time
    return int(settings.WEBHOOK_ENDPOINT_CONCURRENCY)


def deliveries_claim(
    *, endpoint_id: int, delivery_id: int | None = None, limit: int = CLAIM_BATCH, busy_check: bool = True
) -> Slot | None:
    """Claim a slot of the endpoint's longest-due deliveries (only ``delivery_id`` if given),
    or ``None``: nothing due, or the endpoint is busy (every slot in flight: their holders
    claim these next), open-circuited (its deliveries wait for the circuit) or disabled (they
    are held for a replay). ``busy_check=False`` skips the look without the lock (a drain
    that just gave its own slot back)."""
    now = timezone.now()
    if busy_check and _slots_in_flight(endpoint_id, now) >= settings.WEBHOOK_ENDPOINT_CONCURRENCY:
        return None  # seen without queueing for the endpoint's lock behind its slot holders
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update(no_key=True).filter(pk=endpoint_id).first()
        if endpoint is None:
            return None
        due = Delivery.objects.filter(endpoint_id=endpoint_id).filter(_claimable(now))
        if delivery_id is not None:
            due = due.filter(pk=delivery_id)
        if not endpoint.enabled:
            due.update(state=Delivery.State.HELD, lease_until=None, slot=None)
            return None
        if endpoint.circuit_open_until and endpoint.circuit_open_until > now:
            due.filter(state=Delivery.State.PENDING).update(
                next_attempt_at=endpoint.circuit_open_until, dispatched_at=None
            )
            return None
        if _slots_in_flight(endpoint_id, now) >= _concurrency(endpoint):
            return None
        size = 1 if endpoint.consecutive_failures else limit  # failing: one at a time until one succeeds
        longest_due = due.order_by("next_attempt_at").select_for_update(skip_locked=True).values("pk")[:size]
        token = uuid.uuid4().hex
        claimed = Delivery.objects.filter(pk__in=longest_due).update(
            state=Delivery.State.SENDING,
            lease_until=now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS),
            slot=token,
            attempts=F("attempts") + 1,
        )
        if not claimed:
            return None
        deliveries = list(
            Delivery.objects.select_related("event")
            .filter(endpoint_id=endpoint_id, state=Delivery.State.SENDING, slot=token)
            .order_by("next_attempt_at")
        )
    return Slot(endpoint.pk, endpoint.url, endpoint_secrets(endpoint), token, deliveries)


def delivery_post(slot: Slot, delivery: Delivery, session: outbound_http.Session) -> Outcome:
    """Sign and POST one delivery; never raises for the endpoint's failures (they are the outcome)."""
    body = envelope_body(delivery.event)
    headers = signed_headers(
        secrets=slot.secrets, message_id=delivery.event.public_id, timestamp=int(time.time()), body=body
    )
    started = time.monotonic()
    try:
        response = session.post(slot.url, body=body, headers=headers)
    except outbound_http.OutboundError as error:
        duration = round((time.monotonic() - started) * 1000)
        outcome = "permanent" if error.kind == "private_address" else "retry"
        return Outcome(None, "", duration, f"{error.kind}: {error}"[:500], Verdict(outcome))
    excerpt = response.body.decode("utf-8", "replace")[:EXCERPT_CHARS]
    verdict = answer_verdict(response.status, response.headers.get("retry-after"))
    return Outcome(response.status, excerpt, response.duration_ms, "", verdict)


def slot_send(slot: Slot, *, deadline: float) -> list[Outcome]:
    """POST the slot's deliveries in turn; returns the outcomes of those sent, in order.

    Stops after an answer that says the endpoint is in trouble (one to retry, or ``410``)
    and, past ``deadline``, before the next delivery. A permanent answer (a 4xx) is about
    that one message: the next one is sent."""
    outcomes: list[Outcome] = []
    with outbound_http.Session() as session:  # one kept-alive connection for the slot, where the endpoint allows
        for delivery in slot.deliveries:
            if outcomes and (time.monotonic() > deadline or outcomes[-1].verdict.outcome in ENDS_THE_SLOT):
                break
            outcomes.append(delivery_post(slot, delivery, session))
    return outcomes


def _attempt(delivery: Delivery, outcome: Outcome) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=delivery.pk,
        number=delivery.attempts,
        status_code=outcome.status_code,
        response_excerpt=outcome.excerpt,
        duration_ms=outcome.duration_ms,
        error=outcome.error,
        outcome=outcome.verdict.outcome,
    )


@transaction.atomic
def slot_record(slot: Slot, outcomes: list[Outcome]) -> None:
    """Store the attempts and move the slot's deliveries on: the successes succeeded, a
    failure retried on the schedule (or after Retry-After, whichever is later) or failed
    (permanent, ``410``, or the last attempt), the deliveries not reached back to where the
    claim found them. Only rows still held by this slot change: one whose lease expired and
    was claimed again belongs to the new claim, which decides."""
    sent = list(zip(slot.deliveries, outcomes, strict=False))  # the deliveries reached, with their outcomes
    DeliveryAttempt.objects.bulk_create([_attempt(delivery, outcome) for delivery, outcome in sent])
    held = Delivery.objects.filter(slot=slot.token, state=Delivery.State.SENDING)
    now = timezone.now()
    succeeded = [delivery.pk for delivery, outcome in sent if outcome.verdict.outcome == "succeeded"]
    if succeeded:
        held.filter(pk__in=succeeded).update(
            state=Delivery.State.SUCCEEDED, finished_at=now, lease_until=None, slot=None
        )
        endpoint_record_success(endpoint_id=slot.endpoint_id)
    for delivery, outcome in sent:
        if outcome.verdict.outcome != "succeeded":
            _record_failure(held, delivery, outcome, now)
    unsent = [delivery.pk for delivery in slot.deliveries[len(outcomes) :]]
    if unsent:
        held.filter(pk__in=unsent).update(
            state=Delivery.State.PENDING, lease_until=None, slot=None, attempts=F("attempts") - 1
        )
    log.info(
        "webhook_slot",
        endpoint_id=slot.endpoint_id,
        attempts=len(outcomes),
        succeeded=len(succeeded),
        returned=len(unsent),
        ms=sum(outcome.duration_ms for outcome in outcomes),
    )


def _record_failure(held: QuerySet[Delivery], delivery: Delivery, outcome: Outcome, now: datetime) -> None:
    row = held.select_for_update().filter(pk=delivery.pk).first()
    if row is None:
        return  # another claim took over after our lease expired; it decides
    endpoint = WebhookEndpoint.objects.select_for_update(no_key=True).get(pk=row.endpoint_id)
    verdict = outcome.verdict
    if verdict.outcome == "permanent":
        row.state, row.finished_at = Delivery.State.FAILED, now
    elif verdict.outcome == "gone":
        row.state, row.finished_at = Delivery.State.FAILED, now
        endpoint_record_gone(endpoint=endpoint)
    else:
        _schedule_retry(row, verdict, now)
        endpoint_record_failure(endpoint=endpoint)
    row.lease_until, row.slot = None, None
    row.save(update_fields=["state", "finished_at", "next_attempt_at", "dispatched_at", "lease_until", "slot"])
    log.info(
        "webhook_attempt_failed",
        delivery_id=row.pk,
        attempt=row.attempts,
        status=outcome.status_code,
        outcome=verdict.outcome,
        state=row.state,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
    )


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
    """Claim, send and record one attempt of this delivery; ``None`` when there was nothing
    to claim (not due, done, or its endpoint busy, open-circuited or disabled)."""
    endpoint_id = Delivery.objects.filter(pk=delivery_id).values_list("endpoint_id", flat=True).first()
    slot = None if endpoint_id is None else deliveries_claim(endpoint_id=endpoint_id, delivery_id=delivery_id)
    if slot is None:
        return None
    slot_record(slot, slot_send(slot, deadline=0.0))
    return Delivery.objects.get(pk=delivery_id)


def endpoint_drain(*, endpoint_id: int) -> int:
    """Send the endpoint's due deliveries, slot after slot, for at most ``DRAIN_SECONDS``;
    returns how many attempts were made.

    Ends when nothing is due or the endpoint is busy (the slot holders claim what is due
    next), open-circuited or disabled. A drain cut short by its time box or by a failed
    attempt, with deliveries still due, publishes the next drain of the endpoint, so a
    backlog or the deliveries behind one bad answer do not wait for the sweep. A kill loses
    nothing: claimed deliveries have their lease, the rest stay due."""
    deadline = time.monotonic() + DRAIN_SECONDS
    made = 0
    with commits_unflushed():  # a flush per slot record cost about a fifth of a slot's POSTs
        while True:
            slot = deliveries_claim(endpoint_id=endpoint_id, busy_check=made == 0)
            if slot is None:
                return made
            outcomes = slot_send(slot, deadline=deadline)
            slot_record(slot, outcomes)
            made += len(outcomes)
            if outcomes[-1].verdict.outcome in ENDS_THE_SLOT or time.monotonic() > deadline:
                if _any_due(endpoint_id):
                    _next_drain_publish(endpoint_id)
                return made


def _any_due(endpoint_id: int) -> bool:
    return Delivery.objects.filter(endpoint_id=endpoint_id).filter(_claimable(timezone.now())).exists()


def _next_drain_publish(endpoint_id: int) -> None:
    """Hand the rest to the next drain; a broker that is away leaves it to the sweep
    (:func:`drains_publish` clears the stamps of the deliveries still due)."""
    drains_publish(endpoint_ids=[endpoint_id], reason="more")
