"""Celery entry points of notifications: an endpoint's drain and the due-deliveries sweep;
the email drain and its sweep.

Importing this module (autodiscovery) also registers the outbox subscribers (apps.ready).
"""

from __future__ import annotations

from notifications.services.delivery import endpoint_drain as endpoint_deliveries_drain
from notifications.services.email_dispatch import emails_sweep
from notifications.services.email_drain import emails_drain
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


@reliable_task(name="notifications.email_drain", queue=Queue.EMAIL, soft_time_limit=50, time_limit=60, max_retries=0)
def email_drain(*, idempotency_key: str) -> None:
    """Send due email notifications for at most 5 s (each SMTP command has its 10 s timeout).
    A duplicate finds nothing to claim; retries are scheduled in the rows (``next_attempt_at``)."""
    emails_drain()


@reliable_task(name="notifications.emails_sweep", queue=Queue.EMAIL, soft_time_limit=20, time_limit=25)
def email_sweep(*, idempotency_key: str) -> None:
    """Every 2 s (beat): publish drains for notifications that came due or that a dead worker left."""
    emails_sweep()
