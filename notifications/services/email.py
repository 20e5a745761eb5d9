"""Email notifications: created in the business transaction, sent once per notification id.

``notification_enqueue_for_retailer`` writes one row per confirmed address (unique
``dedup_key``: the same cause never mails an address twice) and an outbox message per
row. ``notification_send`` claims the row (``pending``, or ``sending`` with an expired
lease: its worker died mid-send), records ``sending``, talks SMTP outside any
transaction, then records ``sent``. A message that finds the row under another run's live
lease retries (``SendInFlightError``) rather than finish and leave the row to a dead run.
The Message-ID is ``<notification-id@storefabric>``, so in the one window we cannot close
(the server accepted, we died before the commit) the re-send carries the same Message-ID
and the receiver can drop it.

A send costs three statements (read, conditional claim, ``sent``) and, in a burst, no new
SMTP connection: the worker process keeps its connection open between sends
(``notifications.mail_connection``).
"""

from __future__ import annotations

import smtplib
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Exists, F
from django.template.loader import render_to_string
from django.utils import timezone

from notifications.mail_connection import mail_send
from notifications.models import EmailNotification, NotificationAddress, Suppression
from notifications.smtp_errors import SmtpVerdict, smtp_verdict
from workers.errors import PermanentError, TransientError
from workers.outbox import outbox_enqueue_task

log = structlog.get_logger(__name__)

EMAIL_SEND_TASK = "notifications.email_send"
SUBJECTS = {
    "address.confirm": "Confirm your Storefabric notification address",
    "backup.completed": "Your backup is complete",
    "backup.failed": "Your backup failed",
    "endpoint.unhealthy": "A webhook endpoint of yours is failing",
    "endpoint.disabled": "A webhook endpoint of yours was disabled",
}


def notification_enqueue(
    *, retailer_id: int, to_email: str, kind: str, context: dict[str, Any], dedup_key: str
) -> EmailNotification:
    """One notification to one address, and the outbox message that sends it. Idempotent on ``dedup_key``."""
    notification, created = EmailNotification.objects.get_or_create(
        dedup_key=dedup_key[:255],
        defaults={"retailer_id": retailer_id, "to_email": to_email.lower(), "kind": kind, "context": context},
    )
    if created:
        outbox_enqueue_task(
            task_name=EMAIL_SEND_TASK,
            kwargs={"notification_id": str(notification.pk)},
            idempotency_key=f"email:{notification.pk}",
        )
    return notification


def notification_enqueue_for_retailer(
    *, retailer_id: int, kind: str, context: dict[str, Any], dedup_key: str
) -> list[EmailNotification]:
    """A notification to each confirmed address of the retailer (call inside the transaction of the cause)."""
    addresses = NotificationAddress.objects.filter(retailer_id=retailer_id, confirmed_at__isnull=False)
    return [
        notification_enqueue(
            retailer_id=retailer_id,
            to_email=address.email,
            kind=kind,
            context=context,
            dedup_key=f"{dedup_key}:{address.pk}",
        )
        for address in addresses
    ]


class SendInFlightError(TransientError):
    """Another run holds the row's lease: this message retries until that run recorded its
    outcome or its lease expired (its worker died), so the notification is never left ``sending``."""


def _claim(notification_id: str) -> EmailNotification | None:
    """The row, ``sending`` under this run's lease if it could be claimed, else as it is
    (sent, failed, suppressed: the address is on the list); one being sent under a live
    lease raises :class:`SendInFlightError`.

    A read, then an update conditional on what was read (state and lease unchanged, the
    address not suppressed): two runs never both claim a row, since the second update
    changes nothing, and no transaction is held open between them."""
    row = next(iter(EmailNotification.objects.filter(pk=notification_id)[:1]), None)
    if row is None or row.state not in (EmailNotification.State.PENDING, EmailNotification.State.SENDING):
        return row
    now = timezone.now()
    if row.state == EmailNotification.State.SENDING and row.lease_until and row.lease_until >= now:
        raise SendInFlightError(f"notification {notification_id} is being sent until {row.lease_until}")
    as_read = EmailNotification.objects.filter(pk=row.pk, state=row.state, lease_until=row.lease_until)
    lease_until = now + timedelta(seconds=settings.EMAIL_LEASE_SECONDS)
    claimed = as_read.filter(~Exists(Suppression.objects.filter(email=row.to_email))).update(
        state=EmailNotification.State.SENDING, lease_until=lease_until, attempts=F("attempts") + 1
    )
    if claimed:
        row.state, row.lease_until, row.attempts = EmailNotification.State.SENDING, lease_until, row.attempts + 1
        return row
    if not Suppression.objects.filter(email=row.to_email).exists():
        raise SendInFlightError(f"notification {notification_id} was claimed by another run")
    row.state, row.last_error = EmailNotification.State.SUPPRESSED, "the address is on the suppression list"
    as_read.update(state=row.state, last_error=row.last_error)
    return row


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


def notification_send(*, notification_id: str) -> str:
    """Send one notification at most once per claim; returns the row's state afterwards.

    Raises ``TransientError`` (SMTP 4xx, connection failure: the task retries with backoff,
    the row back to ``pending``) or ``PermanentError`` (5xx: the row ``failed``; a 5.1.x /
    5.2.x recipient failure also suppresses the address)."""
    row = _claim(notification_id)
    if row is None or row.state != EmailNotification.State.SENDING:
        return row.state if row else ""
    try:
        mail_send(notification_message(row))
    except (TimeoutError, smtplib.SMTPException, OSError) as error:
        verdict = smtp_verdict(error)
        _record_failure(row, verdict)
        if verdict.permanent:
            raise PermanentError(verdict.detail) from error
        raise TransientError(verdict.detail) from error
    EmailNotification.objects.filter(pk=row.pk, state=EmailNotification.State.SENDING).update(
        state=EmailNotification.State.SENT, sent_at=timezone.now(), lease_until=None
    )
    log.info("email_sent", notification_id=str(row.pk), kind=row.kind)
    return EmailNotification.State.SENT


@transaction.atomic
def _record_failure(row: EmailNotification, verdict: SmtpVerdict) -> None:
    state = EmailNotification.State.FAILED if verdict.permanent else EmailNotification.State.PENDING
    EmailNotification.objects.filter(pk=row.pk).update(state=state, last_error=verdict.detail[:500], lease_until=None)
    if verdict.suppress:
        suppression_add(email=row.to_email, reason="smtp_recipient", detail=verdict.detail)


def suppression_add(*, email: str, reason: str, detail: str = "") -> Suppression:
    """Put an address on the suppression list (idempotent); later sends to it are recorded ``suppressed``."""
    suppression, _ = Suppression.objects.get_or_create(
        email=email.lower(), defaults={"reason": reason[:40], "detail": detail[:500]}
    )
    return suppression
