"""Sending again on request: retry one delivery, replay many by filter, ping one endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from app.errors import ApiError
from notifications.envelope import event_public_id
from notifications.models import Delivery, WebhookEndpoint, WebhookEvent
from notifications.services.fanout import drain_enqueue

REPLAYABLE = (Delivery.State.FAILED, Delivery.State.HELD, Delivery.State.SUCCEEDED, Delivery.State.PENDING)


@dataclass(frozen=True)
class ReplayFilter:
    event_types: list[str]
    since: datetime | None
    until: datetime | None
    states: list[str]


def _rearm(delivery: Delivery) -> None:
    """Due now with a fresh schedule; the caller enqueues the endpoint's drain."""
    delivery.state, delivery.attempts, delivery.next_attempt_at = Delivery.State.PENDING, 0, timezone.now()
    delivery.dispatched_at, delivery.finished_at, delivery.lease_until = timezone.now(), None, None
    delivery.save(update_fields=["state", "attempts", "next_attempt_at", "dispatched_at", "finished_at", "lease_until"])


@transaction.atomic
def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Send a delivery again now, with a fresh schedule (409 while an attempt is in flight)."""
    locked = Delivery.objects.select_for_update().get(pk=delivery.pk)
    if locked.state == Delivery.State.SENDING:
        raise ApiError("delivery_in_flight")
    _rearm(locked)
    drain_enqueue(endpoint_id=locked.endpoint_id, reason=f"retry:{locked.pk}:{timezone.now().timestamp()}")
    return locked


def replay_matches(*, endpoint: WebhookEndpoint, replay: ReplayFilter) -> QuerySet[Delivery]:
    rows = Delivery.objects.filter(endpoint=endpoint, state__in=replay.states or REPLAYABLE)
    if replay.event_types:
        rows = rows.filter(event__event_type__in=replay.event_types)
    if replay.since:
        rows = rows.filter(event__occurred_at__gte=replay.since)
    if replay.until:
        rows = rows.filter(event__occurred_at__lt=replay.until)
    return rows.exclude(state=Delivery.State.SENDING)


@transaction.atomic
def deliveries_replay(*, endpoint: WebhookEndpoint, replay: ReplayFilter, dry_run: bool) -> int:
    """Send every matching delivery again (same ``webhook-id`` each); ``dry_run`` only counts."""
    rows = replay_matches(endpoint=endpoint, replay=replay)
    if dry_run:
        return rows.count()
    if not endpoint.enabled:
        raise ApiError("conflict", "Enable the endpoint before replaying to it.")
    replayed = list(rows.select_for_update(of=("self",)))
    for delivery in replayed:
        _rearm(delivery)
    if replayed:
        drain_enqueue(endpoint_id=endpoint.pk, reason=f"replay:{endpoint.pk}:{timezone.now().timestamp()}")
    return len(replayed)


@transaction.atomic
def endpoint_ping(*, endpoint: WebhookEndpoint) -> Delivery:
    """A ``ping`` event to this endpoint only, delivered like any other (signed, recorded)."""
    now = timezone.now()
    event = WebhookEvent.objects.create(
        public_id=event_public_id(topic="ping", key=f"endpoint:{endpoint.pk}", version=int(now.timestamp() * 1e6)),
        retailer_id=endpoint.retailer_id,
        event_type="ping",
        payload={"endpoint_id": endpoint.pk, "message": "Storefabric test event"},
        occurred_at=now,
    )
    delivery = Delivery.objects.create(event=event, endpoint=endpoint, dispatched_at=now)
    drain_enqueue(endpoint_id=endpoint.pk, reason=f"ping:{delivery.pk}")
    return delivery
