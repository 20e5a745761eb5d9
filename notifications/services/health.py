"""Endpoint health: the circuit breaker, the unhealthy warning and disabling.

Called inside the transaction that records an attempt, with the endpoint row locked.

* ``WEBHOOK_CIRCUIT_FAILURES`` failed attempts in a row open the circuit for
  ``WEBHOOK_CIRCUIT_OPEN_SECONDS``: deliveries wait (no attempt spent) instead of
  piling onto a dead endpoint; afterwards one probe at a time (half-open) until one succeeds.
* The first time the circuit opens, the retailer is mailed that the endpoint is unhealthy.
* No success for ``WEBHOOK_DISABLE_AFTER_SECONDS`` (5 days) with at least 8 failed attempts,
  or a ``410 Gone``, disables the endpoint: ``endpoint.disabled`` is announced through the
  outbox (a webhook to the retailer's other endpoints, and an email). The disabled endpoint
  itself is not subscribed any more, so the announcement cannot reach it and loop.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from notifications.models import WebhookEndpoint
from notifications.schedule import MAX_ATTEMPTS
from notifications.services.email import notification_enqueue_for_retailer
from workers.outbox import outbox_announce

SUCCESS_STAMP_EVERY = timedelta(seconds=1)


def endpoint_record_success(*, endpoint_id: int) -> None:
    """Close the circuit and forget the failures: one UPDATE, skipped while the endpoint is
    healthy and its ``last_success_at`` is under ``SUCCESS_STAMP_EVERY`` old, so a busy
    endpoint's row is written once a second rather than once per delivery."""
    now = timezone.now()
    still_fresh = Q(
        consecutive_failures=0,
        circuit_open_until__isnull=True,
        first_failure_at__isnull=True,
        unhealthy_notified_at__isnull=True,
        last_success_at__gte=now - SUCCESS_STAMP_EVERY,
    )
    WebhookEndpoint.objects.filter(pk=endpoint_id).exclude(still_fresh).update(
        consecutive_failures=0,
        circuit_open_until=None,
        first_failure_at=None,
        unhealthy_notified_at=None,
        last_success_at=now,
    )


def endpoint_record_failure(*, endpoint: WebhookEndpoint) -> None:
    now = timezone.now()
    endpoint.consecutive_failures += 1
    endpoint.first_failure_at = endpoint.first_failure_at or now
    if endpoint.consecutive_failures >= settings.WEBHOOK_CIRCUIT_FAILURES:
        endpoint.circuit_open_until = now + timedelta(seconds=settings.WEBHOOK_CIRCUIT_OPEN_SECONDS)
        if endpoint.unhealthy_notified_at is None:
            endpoint.unhealthy_notified_at = now
            _mail(endpoint, "endpoint.unhealthy", f"unhealthy:{endpoint.pk}:{endpoint.first_failure_at.isoformat()}")
    endpoint.save(update_fields=_HEALTH_FIELDS)
    failing_for = now - endpoint.first_failure_at
    if (
        failing_for >= timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_SECONDS)
        and endpoint.consecutive_failures >= MAX_ATTEMPTS
    ):
        endpoint_disable(endpoint=endpoint, reason=f"no successful delivery for {failing_for.days} days")


def endpoint_record_gone(*, endpoint: WebhookEndpoint) -> None:
    endpoint_disable(endpoint=endpoint, reason="the endpoint answered 410 Gone")


def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str) -> None:
    """Disable (idempotent: an endpoint already disabled announces nothing again)."""
    if not endpoint.enabled:
        return
    now = timezone.now()
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason[:200]
    endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason"])
    outbox_announce(
        topic="endpoint.disabled",
        payload={
            "retailer_id": endpoint.retailer_id,
            "endpoint_id": endpoint.pk,
            "url": endpoint.url,
            "reason": endpoint.disabled_reason,
            "occurred_at": now.isoformat(),
        },
        key=f"endpoint:{endpoint.pk}",
        version=int(now.timestamp() * 1000),
    )


def _mail(endpoint: WebhookEndpoint, kind: str, dedup: str) -> None:
    notification_enqueue_for_retailer(
        retailer_id=endpoint.retailer_id,
        kind=kind,
        context={"endpoint_id": endpoint.pk, "url": endpoint.url},
        dedup_key=dedup,
    )


_HEALTH_FIELDS = [
    "consecutive_failures",
    "circuit_open_until",
    "first_failure_at",
    "last_success_at",
    "unhealthy_notified_at",
]
