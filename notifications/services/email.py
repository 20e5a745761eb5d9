"""Email notifications: created in the business transaction, then sent by a drain.

``notifications_enqueue`` writes one row per notification (unique ``dedup_key``: the same
cause never mails an address twice) and, once the transaction commits, publishes drains
(``notifications.services.email_drain``) that claim due rows in batches and send them over
the worker's open SMTP connection. The row is the durable record: a drain message lost
with its process leaves the row due, and the sweep publishes another. The Message-ID is
``<notification-id@storefabric>``, so in the one window we cannot close (the server
accepted, we died before the commit) the re-send carries the same Message-ID and the
receiver can drop it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.models import EmailNotification, NotificationAddress, Suppression
from notifications.services.email_dispatch import drains_publish_after_commit

SUBJECTS = {
    "address.confirm": "Confirm your Storefabric notification address",
    "backup.completed": "Your backup is complete",
    "backup.failed": "Your backup failed",
    "endpoint.unhealthy": "A webhook endpoint of yours is failing",
    "endpoint.disabled": "A webhook endpoint of yours was disabled",
}


@dataclass(frozen=True)
class NewNotification:
    retailer_id: int
    to_email: str
    kind: str
    dedup_key: str
    context: dict[str, Any] = field(default_factory=dict)


def notifications_enqueue(notifications: Sequence[NewNotification]) -> list[EmailNotification]:
    """Store the notifications (one that exists under its ``dedup_key`` is kept as it is) and
    publish drains for them once the transaction commits; returns the stored rows, in order."""
    if not notifications:
        return []
    now = timezone.now()
    EmailNotification.objects.bulk_create(
        [
            EmailNotification(
                retailer_id=new.retailer_id,
                to_email=new.to_email.lower(),
                kind=new.kind,
                context=new.context,
                dedup_key=new.dedup_key[:255],
                next_attempt_at=now,
                dispatched_at=now,
            )
            for new in notifications
        ],
        ignore_conflicts=True,
    )
    keys = [new.dedup_key[:255] for new in notifications]
    stored = EmailNotification.objects.in_bulk(keys, field_name="dedup_key")
    drains_publish_after_commit(count=len(notifications))
    return [stored[key] for key in keys]


def notification_enqueue(
    *, retailer_id: int, to_email: str, kind: str, context: dict[str, Any], dedup_key: str
) -> EmailNotification:
    """One notification to one address (:func:`notifications_enqueue` of one)."""
    (row,) = notifications_enqueue([NewNotification(retailer_id, to_email, kind, dedup_key, context)])
    return row


def retailer_notifications(
    *, retailer_id: int, kind: str, context: dict[str, Any], dedup_key: str
) -> list[NewNotification]:
    """A notification to each confirmed address of the retailer."""
    addresses = NotificationAddress.objects.filter(retailer_id=retailer_id, confirmed_at__isnull=False)
    return [
        NewNotification(retailer_id, address.email, kind, f"{dedup_key}:{address.pk}", context)
        for address in addresses.order_by("pk")
    ]


def notification_enqueue_for_retailer(
    *, retailer_id: int, kind: str, context: dict[str, Any], dedup_key: str
) -> list[EmailNotification]:
    """A notification to each confirmed address of the retailer (call inside the transaction of the cause)."""
    return notifications_enqueue(
        retailer_notifications(retailer_id=retailer_id, kind=kind, context=context, dedup_key=dedup_key)
    )


def notification_message(notification: EmailNotification) -> EmailMultiAlternatives:
    """The message, rendered from ``notifications/email/<kind>.txt`` and ``.html``."""
    template = notification.kind.replace(".", "_")
    context = {**notification.context, "notification": notification}
    message = EmailMultiAlternatives(
        subject=SUBJECTS.get(notification.kind, "Storefabric notification"),
        body=render_to_string(f"notifications/email/{template}.txt", context),
        to=[notification.to_email],
        headers={"Message-ID": notification.message_id},
    )
    message.attach_alternative(render_to_string(f"notifications/email/{template}.html", context), "text/html")
    return message


def suppression_add(*, email: str, reason: str, detail: str = "") -> Suppression:
    """Put an address on the suppression list (idempotent); later sends to it are recorded ``suppressed``."""
    suppression, _ = Suppression.objects.get_or_create(
        email=email.lower(), defaults={"reason": reason[:40], "detail": detail[:500]}
    )
    return suppression
