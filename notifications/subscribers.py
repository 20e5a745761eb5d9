"""The outbox subscriptions of notifications: every fanned-out topic becomes webhook
deliveries, and the emailed ones also become email notifications.

Registered with ``workers.outbox.outbox_subscriber`` when the app loads, so no other app
imports this one: the dispatcher (``workers.event_dispatch``) finds the handlers by topic.
"""

from __future__ import annotations

from typing import Any

from notifications.events import EMAILED, FANNED_OUT
from notifications.services.email import notifications_enqueue, retailer_notifications
from notifications.services.fanout import events_fan_out
from workers.outbox import outbox_subscriber
from workers.routing import Queue


def events_notify(events: list[dict[str, Any]]) -> None:
    """Fan the events (of one topic) out to webhooks, in bulk, and for the emailed topics to
    the confirmed addresses. Idempotent: a redelivered event finds its rows (unique keys)
    and adds none."""
    events_fan_out(events=events)
    notifications_enqueue(
        [
            notification
            for event in events
            if event["topic"] in EMAILED and isinstance(event.get("retailer_id"), int)
            for notification in retailer_notifications(
                retailer_id=event["retailer_id"],
                kind=str(event["topic"]),
                context={name: value for name, value in event.items() if isinstance(value, str | int | float)},
                dedup_key=f"event:{event['topic']}:{event['key']}:{event['version']}",
            )
        ]
    )


for _topic in FANNED_OUT:  # dispatched on the notify worker group's queue, not behind pricing on default
    outbox_subscriber(_topic, queue=Queue.WEBHOOKS, many=True)(events_notify)
