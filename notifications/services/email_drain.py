"""Sending email: a drain claims due notifications in batches and sends them in turn over
its process's open SMTP connection, recording each one ``sent`` as soon as the server
accepted it.

A claim (:func:`notifications_claim`) marks up to ``CLAIM_BATCH`` due rows (``pending`` and
due, or ``sending`` with an expired lease: their worker died) ``sending`` under one token and
one lease, with ``SELECT … FOR UPDATE SKIP LOCKED``: drains running side by side take
different rows, and a redelivered or duplicate drain finds nothing it could send twice. Rows
whose address is on the suppression list are recorded ``suppressed`` there, and the list is
looked at again every ``SUPPRESSION_RECHECK_SECONDS`` while the batch is sent, so a bounce
stops the next send within a second of its arrival.

Each send is followed by its own ``UPDATE … SET state = 'sent'`` (autocommit, without
waiting for the WAL flush: ``app.unflushed_commits``), so the window we cannot close — the
server accepted, the process died before the commit — holds at most one message per drain;
its re-send after the lease carries the same Message-ID. Outcomes: a 5xx fails that
notification (a 5.1.x / 5.2.x also suppresses the address) and the batch goes on; a 4xx
schedules that one again (``next_attempt_at``, exponential backoff with full jitter,
``MAX_ATTEMPTS`` in all); a failure of the server itself (refused, dropped, ``421``)
schedules that one and postpones the rest of the batch to the same moment, untouched.

A drain claims for at most ``DRAIN_SECONDS`` and starts no send after that, so its last
send begins well inside the lease (``EMAIL_LEASE_SECONDS``, 60 s; each SMTP command has its
``EMAIL_TIMEOUT``); the rows not reached go back, due, and one follow-up drain takes them.
"""

from __future__ import annotations

import smtplib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.template import TemplateDoesNotExist, TemplateSyntaxError
from django.utils import timezone

from app.unflushed_commits import commits_unflushed
from notifications.mail_connection import mail_send
from notifications.models import EmailNotification, Suppression
from notifications.services.email import notification_message, suppression_add
from notifications.services.email_dispatch import CLAIM_BATCH, drains_publish
from notifications.smtp_errors import SmtpVerdict, smtp_verdict
from workers.backoff import backoff_for

log = structlog.get_logger(__name__)

DRAIN_SECONDS = 5.0
SUPPRESSION_RECHECK_SECONDS = 0.5
MAX_ATTEMPTS = 9  # the first and 8 retries, 10 s doubling to at most 30 min apart
RETRY_BASE_SECONDS = 10.0
RETRY_CAP_SECONDS = 1800.0
SUPPRESSED_NOTE = "the address is on the suppression list"
DIED_NOTE = f"gave up after {MAX_ATTEMPTS} attempts: the process sending it died each time"
State = EmailNotification.State


@dataclass
class Claim:
    """Rows claimed together under ``token``, to be sent in turn."""

    token: str
    rows: list[EmailNotification]
    checked_at: float = field(default_factory=time.monotonic)  # the last look at the suppression list
    suppressed: set[str] = field(default_factory=set)  # addresses found on it since the claim


@dataclass(frozen=True)
class ClaimResult:
    sent: int
    stopped: str  # "done" | "deadline" (rows went back, due) | "server_down" (rows postponed)


def _claimable(now: datetime) -> Q:
    return Q(state=State.PENDING, next_attempt_at__lte=now) | Q(state=State.SENDING, lease_until__lt=now)


def notifications_claim(*, limit: int = CLAIM_BATCH) -> Claim | None:
    """Claim up to ``limit`` of the longest-due notifications, or ``None`` if none is due."""
    now = timezone.now()
    token = uuid.uuid4().hex
    with transaction.atomic():
        due = (
            EmailNotification.objects.filter(_claimable(now))
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values("pk")[:limit]
        )
        claimed = EmailNotification.objects.filter(pk__in=due).update(
            state=State.SENDING,
            lease_until=now + timedelta(seconds=settings.EMAIL_LEASE_SECONDS),
            claim=token,
            attempts=F("attempts") + 1,
        )
        if not claimed:
            return None
        held = EmailNotification.objects.filter(claim=token, state=State.SENDING)
        held.filter(attempts__gt=MAX_ATTEMPTS).update(  # every send of it so far died with its process
            state=State.FAILED, last_error=DIED_NOTE, lease_until=None, claim=None
        )
        held.filter(Exists(Suppression.objects.filter(email=OuterRef("to_email")))).update(
            state=State.SUPPRESSED, last_error=SUPPRESSED_NOTE, lease_until=None, claim=None, attempts=F("attempts") - 1
        )
        rows = list(held.order_by("next_attempt_at", "pk"))
    return Claim(token, rows)


def _held(claim: Claim, rows: list[EmailNotification]) -> QuerySet[EmailNotification]:
    """The given rows, where this claim still holds them (a lease that expired was claimed again)."""
    return EmailNotification.objects.filter(pk__in=[row.pk for row in rows], claim=claim.token, state=State.SENDING)


def _suppressed(claim: Claim, rows: list[EmailNotification]) -> set[str]:
    """Addresses of the claim found on the suppression list since the claim, looked at again
    every ``SUPPRESSION_RECHECK_SECONDS``; the rows to them among ``rows`` are recorded ``suppressed``."""
    if time.monotonic() - claim.checked_at < SUPPRESSION_RECHECK_SECONDS:
        return claim.suppressed
    claim.checked_at = time.monotonic()
    found = set(Suppression.objects.filter(email__in={row.to_email for row in rows}).values_list("email", flat=True))
    if found - claim.suppressed:
        _held(claim, [row for row in rows if row.to_email in found]).update(
            state=State.SUPPRESSED, last_error=SUPPRESSED_NOTE, lease_until=None, claim=None, attempts=F("attempts") - 1
        )
        claim.suppressed |= found
    return claim.suppressed


def _retry_at(row: EmailNotification, now: datetime) -> datetime | None:
    if row.attempts >= MAX_ATTEMPTS:
        return None
    delay = backoff_for(row.attempts - 1, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS).delay
    return now + timedelta(seconds=delay)


@transaction.atomic
def _record_failure(claim: Claim, row: EmailNotification, verdict: SmtpVerdict) -> datetime | None:
    """Fail or reschedule the row; returns when it is tried again (``None``: not again)."""
    now = timezone.now()
    retry_at = None if verdict.permanent else _retry_at(row, now)
    if retry_at is None:
        detail = verdict.detail if verdict.permanent else f"gave up after {row.attempts} attempts: {verdict.detail}"
        _held(claim, [row]).update(state=State.FAILED, last_error=detail[:500], lease_until=None, claim=None)
    else:
        _held(claim, [row]).update(
            state=State.PENDING,
            next_attempt_at=retry_at,
            dispatched_at=None,
            last_error=verdict.detail[:500],
            lease_until=None,
            claim=None,
        )
    if verdict.suppress:
        suppression_add(email=row.to_email, reason="smtp_recipient", detail=verdict.detail)
    log.info(
        "email_failed",
        notification_id=str(row.pk),
        attempt=row.attempts,
        permanent=verdict.permanent,
        retry_at=retry_at.isoformat() if retry_at else None,
        error=verdict.detail[:300],
    )
    return retry_at


def _give_back(claim: Claim, rows: list[EmailNotification], *, due_at: datetime | None) -> None:
    """Rows not reached, as the claim found them (due now, or postponed to ``due_at``)."""
    if not rows:
        return
    now = timezone.now()
    _held(claim, rows).update(
        state=State.PENDING,
        next_attempt_at=due_at or now,
        dispatched_at=None if due_at else now,  # due now: the caller publishes their drain
        lease_until=None,
        claim=None,
        attempts=F("attempts") - 1,
    )


def _record_sent(claim: Claim, row: EmailNotification) -> None:
    _held(claim, [row]).update(state=State.SENT, sent_at=timezone.now(), lease_until=None, claim=None)


def _send(row: EmailNotification) -> SmtpVerdict | None:
    """Send one notification; its failure's verdict, or ``None`` once the server accepted it."""
    try:
        message = notification_message(row)
    except (TemplateDoesNotExist, TemplateSyntaxError) as error:  # it never will: the notification fails
        return SmtpVerdict(permanent=True, suppress=False, detail=f"not rendered: {type(error).__name__}: {error}")
    try:
        mail_send(message)
    except (TimeoutError, smtplib.SMTPException, OSError) as error:
        return smtp_verdict(error)
    return None


def claim_send(claim: Claim, *, deadline: float) -> ClaimResult:
    """Send the claim's rows in turn, recording each outcome as it comes; stops at ``deadline``
    (before a send) and when the server is down."""
    sent = 0
    for index, row in enumerate(claim.rows):
        rest = claim.rows[index:]
        if time.monotonic() > deadline:
            _give_back(claim, rest, due_at=None)
            return ClaimResult(sent, "deadline")
        if row.to_email in _suppressed(claim, rest):
            continue
        verdict = _send(row)
        if verdict is None:
            _record_sent(claim, row)
            sent += 1
            continue
        retry_at = _record_failure(claim, row, verdict)
        if verdict.server_down:
            _give_back(claim, rest[1:], due_at=retry_at or timezone.now() + timedelta(seconds=RETRY_BASE_SECONDS))
            return ClaimResult(sent, "server_down")
    return ClaimResult(sent, "done")


def emails_drain() -> int:
    """Send due notifications, claim after claim, for at most ``DRAIN_SECONDS``; returns how
    many were sent. Cut short by its time box with rows still due, it publishes one more
    drain; stopped by a server that is down, it leaves the postponed rows to the sweep."""
    deadline = time.monotonic() + DRAIN_SECONDS
    sent = 0
    with commits_unflushed():  # a flush per sent mark would cost more than its email
        while time.monotonic() <= deadline:
            claim = notifications_claim()
            if claim is None:
                break
            result = claim_send(claim, deadline=deadline)
            sent += result.sent
            if result.stopped == "server_down":
                return sent
        else:
            _next_drain_publish()
    log.info("email_drained", sent=sent)
    return sent


def _next_drain_publish() -> None:
    """Hand the rest to the next drain; a broker that is away leaves it to the sweep
    (:func:`drains_publish` clears the stamps of the rows still due)."""
    if EmailNotification.objects.filter(_claimable(timezone.now())).exists():
        drains_publish(count=1, reason="more")
