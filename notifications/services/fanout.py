"""Fan-out: one announced event → one stored event and one delivery row per subscribed endpoint.

Runs inside the outbox dispatcher's transaction (``workers.services.outbox_event_dispatch``),
and a redelivered event adds nothing: ``WebhookEvent.public_id`` and (event, endpoint) are
unique. The first attempts are published straight after that commit
(``deliveries_publish_after_commit``): the delivery row itself is the durable record (pending,
due, stamped ``dispatched_at``), so a publish lost with its process is found again by the
sweep after ``WEBHOOK_REDISPATCH_SECONDS``; no second outbox row and relay hop per delivery.
Each delivery is its own row, retried on its own schedule, so one failing endpoint never
blocks or rolls back the others. An endpoint that is disabled gets a ``held`` delivery:
the event is kept, and a replay after re-enabling sends it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from notifications.envelope import event_data, event_public_id
from notifications.models import Delivery, WebhookEndpoint, WebhookEvent
from notifications.services.sweep import deliveries_publish_after_commit
from workers.outbox import outbox_enqueue_task

DELIVERY_SEND_TASK = "notifications.delivery_send"


def _occurred_at(value: Any) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    return parsed or timezone.now()


def event_store(*, topic: str, key: str, version: int, retailer_id: int, event: dict[str, Any]) -> WebhookEvent:
    """The stored event for this announcement, created once, and locked until the caller's
    commit: a concurrent fan-out of the same event waits here, then finds its deliveries."""
    stored, _ = WebhookEvent.objects.select_for_update().get_or_create(
        public_id=event_public_id(topic=topic, key=key, version=version),
        defaults={
            "retailer_id": retailer_id,
            "event_type": topic,
            "payload": event_data(event),
            "occurred_at": _occurred_at(event.get("occurred_at")),
        },
    )
    return stored


def deliveries_create(*, event: WebhookEvent, endpoints: list[WebhookEndpoint]) -> list[Delivery]:
    """One delivery per endpoint, skipping pairs that exist (a redelivered event); the new
    pending deliveries are published for their first attempt once this transaction commits.

    The caller holds the event's row lock (``event_store``), so no other transaction inserts
    the same pairs meanwhile, and the plain insert returns the new ids."""
    existing = set(Delivery.objects.filter(event=event).values_list("endpoint_id", flat=True))
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
            for endpoint in endpoints
            if endpoint.pk not in existing
        ]
    )
    deliveries_publish_after_commit(
        ids=[delivery.pk for delivery in created if delivery.state == Delivery.State.PENDING], reason="first"
    )
    return created


def delivery_send_enqueue(*, delivery: Delivery, reason: str) -> None:
    """An outbox message that runs one attempt of ``delivery`` once this transaction commits
    (retry, replay and ping: one delivery each, announced durably with the change)."""
    outbox_enqueue_task(
        task_name=DELIVERY_SEND_TASK,
        kwargs={"delivery_id": delivery.pk},
        idempotency_key=f"webhook-delivery:{delivery.pk}:{reason}:{delivery.attempts}",
    )


@transaction.atomic(savepoint=False)  # the dispatcher's transaction: a failure rolls it all back anyway
def event_fan_out(*, event: dict[str, Any]) -> int:
    """Store ``event`` and create its deliveries; returns how many deliveries this call created.
    Needs ``retailer_id`` in the payload (an event without one reaches nobody)."""
    retailer_id = event.get("retailer_id")
    if not isinstance(retailer_id, int):
        return 0
    topic = str(event["topic"])
    stored = event_store(
        topic=topic, key=str(event["key"]), version=int(event["version"]), retailer_id=retailer_id, event=event
    )
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(retailer_id=retailer_id).order_by("pk")
        if topic in endpoint.event_types
    ]
    return len(deliveries_create(event=stored, endpoints=endpoints))
