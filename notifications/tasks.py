"""Celery entry points of notifications: an endpoint's drain, the due-deliveries sweep, one email.

Importing this module (autodiscovery) also registers the outbox subscribers (apps.ready).
"""

from __future__ import annotations

from notifications.services.delivery import endpoint_drain as endpoint_deliveries_drain
from notifications.services.email import EMAIL_SEND_TASK, notification_send
from notifications.services.fanout import ENDPOINT_DRAIN_TASK
from notifications.services.sweep import deliveries_sweep as due_deliveries_sweep
from workers.reliable import reliable_task
from workers.routing import Queue


@reliable_task(name=ENDPOINT_DRAIN_TASK, queue=Queue.WEBHOOKS, soft_time_limit=25, time_limit=30, max_retries=0)
def endpoint_drain(*, endpoint_id: int, idempotency_key: str) -> None:
    """Send the endpoint's due deliveries, a slot at a time (at most 5 s, plus 15 s of HTTP).
    A duplicate finds nothing to claim. Retries are scheduled in the delivery rows
    (``next_attempt_at``), not by Celery."""
    endpoint_deliveries_drain(endpoint_id=endpoint_id)


@reliable_task(name="notifications.deliveries_sweep", queue=Queue.WEBHOOKS, soft_time_limit=20, time_limit=25)
def deliveries_sweep(*, idempotency_key: str) -> None:
    """Every 2 s (beat): publish a drain for each endpoint with due deliveries or leases a dead worker left."""
    due_deliveries_sweep()


@reliable_task(
    name=EMAIL_SEND_TASK,
    queue=Queue.EMAIL,
    soft_time_limit=50,
    time_limit=60,
    max_retries=8,
    backoff_base=10.0,
    backoff_cap=1800.0,
)
def email_send(*, notification_id: str, idempotency_key: str) -> None:
    """Send one email notification once; SMTP 4xx / connection failures retry with capped backoff."""
    notification_send(notification_id=notification_id)
