"""Fan-out: announced events → one stored event each and one delivery row per subscribed endpoint.

Runs inside the outbox dispatcher's transaction (``workers.services.outbox_events_dispatch``),
for all the events of one dispatch message at once: a handful of statements per batch, not
per event. A redelivered event adds nothing: ``WebhookEvent.public_id`` and (event, endpoint)
are unique. Each endpoint with new deliveries gets one drain (``delivery.endpoint_drain``)
published straight after that commit (``drains_publish_after_commit``): the delivery rows
themselves are the durable record (pending, due, stamped ``dispatched_at``), so a publish lost
with its process is found again by the sweep after ``WEBHOOK_REDISPATCH_SECONDS``; no second
outbox row and relay hop. Each delivery is its own row, retried on its own schedule, so one
failing endpoint never blocks or rolls back the others. An endpoint that is disabled gets a
``held`` delivery: the event is kept, and a replay after re-enabling sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from notifications.envelope import event_data, event_public_id
from notifications.models import Delivery, WebhookEndpoint, WebhookEvent
from notifications.services.sweep import drains_publish_after_commit
from workers.outbox import outbox_enqueue_task

ENDPOINT_DRAIN_TASK = "notifications.endpoint_drain"


def _occurred_at(value: Any) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    return parsed or timezone.now()


def events_store(*, events: Sequence[dict[str, Any]]) -> dict[str, WebhookEvent]:
    """The stored event of each announcement (``public_id`` → row), created once, and locked
    until the caller's commit: a concurrent fan-out of the same events waits here (on the
    unique index, then on the row locks), then finds their deliveries."""
    rows = {
        event_public_id(topic=str(event["topic"]), key=str(event["key"]), version=int(event["version"])): event
        for event in events
    }
    WebhookEvent.objects.bulk_create(
        [
            WebhookEvent(
                public_id=public_id,
                retailer_id=event["retailer_id"],
                event_type=str(event["topic"]),
                payload=event_data(event),
                occurred_at=_occurred_at(event.get("occurred_at")),
            )
            for public_id, event in rows.items()
        ],
        ignore_conflicts=True,
    )
    return {
        stored.public_id: stored
        for stored in WebhookEvent.objects.select_for_update().filter(public_id__in=list(rows)).order_by("pk")
    }


def deliveries_create(*, pairs: Sequence[tuple[WebhookEvent, WebhookEndpoint]]) -> list[Delivery]:
    """One delivery per (event, endpoint), skipping pairs that exist (a redelivered event); each
    endpoint with new pending deliveries is drained once this transaction commits.

    The caller holds the events' row locks (``events_store``), so no other transaction inserts
    the same pairs meanwhile, and the plain insert returns the new ids."""
    existing = set(
        Delivery.objects.filter(event__in={event.pk for event, _ in pairs}).values_list("event_id", "endpoint_id")
    )
    now = timezone.now()
    created = Delivery.objects.bulk_create(
        [
            Delivery(
                event=event,
                endpoint=endpoint,
                state=Delivery.State.PENDING if endpoint.enabled else Delivery.State.HELD,
                next_attempt_at=now,
                dispatched_at=now if endpoint.enabled else None,
            )
            for event, endpoint in pairs
            if (event.pk, endpoint.pk) not in existing
        ]
    )
    drains_publish_after_commit(
        endpoint_ids=[delivery.endpoint_id for delivery in created if delivery.state == Delivery.State.PENDING],
        reason="first",
    )
    return created


def drain_enqueue(*, endpoint_id: int, reason: str) -> None:
    """An outbox message that drains the endpoint once this transaction commits (retry, replay
    and ping: announced durably with the change that made its deliveries due)."""
    outbox_enqueue_task(
        task_name=ENDPOINT_DRAIN_TASK, kwargs={"endpoint_id": endpoint_id}, idempotency_key=f"webhook-drain:{reason}"
    )


@transaction.atomic(savepoint=False)  # the dispatcher's transaction: a failure rolls it all back anyway
def events_fan_out(*, events: Sequence[dict[str, Any]]) -> int:
    """Store the events and create their deliveries; returns how many deliveries this call
    created. An event needs ``retailer_id`` in its payload (one without reaches nobody)."""
    addressed = [event for event in events if isinstance(event.get("retailer_id"), int)]
    if not addressed:
        return 0
    stored = events_store(events=addressed)
    endpoints: dict[int, list[WebhookEndpoint]] = {}
    for endpoint in WebhookEndpoint.objects.filter(
        retailer_id__in={event.retailer_id for event in stored.values()}
    ).order_by("pk"):
        endpoints.setdefault(endpoint.retailer_id, []).append(endpoint)
    pairs = [
        (event, endpoint)
        for event in stored.values()
        for endpoint in endpoints.get(event.retailer_id, ())
        if event.event_type in endpoint.event_types
    ]
    return len(deliveries_create(pairs=pairs))


def event_fan_out(*, event: dict[str, Any]) -> int:
    """:func:`events_fan_out` of one event."""
    return events_fan_out(events=[event])
