"""Bounces and complaints from the email provider (django-anymail's tracking webhooks).

Anymail checks the webhook's signature or basic auth (``ANYMAIL["WEBHOOK_SECRET"]``)
before it sends the ``tracking`` signal; a bounce, a complaint or a provider rejection
puts the recipient on the suppression list at once, so the next send, claimed after
this commit, is recorded ``suppressed`` instead of mailed.
"""

from __future__ import annotations

from typing import Any

from anymail.signals import tracking
from django.dispatch import receiver

from notifications.services.email import suppression_add

SUPPRESSING_EVENTS = {"bounced": "bounce", "complained": "complaint", "rejected": "rejected"}


@receiver(tracking, dispatch_uid="notifications.tracking_suppress")
def tracking_suppress(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
    reason = SUPPRESSING_EVENTS.get(event.event_type)
    if reason and event.recipient:
        suppression_add(
            email=event.recipient, reason=reason, detail=f"{esp_name}: {event.description or event.mta_response or ''}"
        )
