"""The email drain's claims and the sweep that hands due rows to drains: rows claimed once,
given back as they were when a drain runs out of time, a bounce arriving mid-batch stopping
the next send, and the sweep publishing for retries come due and for rows a dead worker left."""

from __future__ import annotations

import smtplib
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.models import EmailNotification
from notifications.services.email import suppression_add
from notifications.services.email_dispatch import CLAIM_BATCH, drains_wanted, emails_due_claim
from notifications.services.email_drain import SUPPRESSION_RECHECK_SECONDS, claim_send, notifications_claim
from notifications.smtp_errors import smtp_verdict
from notifications.tests.factories import notifications_make

pytestmark = pytest.mark.django_db


def test_two_claims_never_take_the_same_row(alice) -> None:
    notifications_make(alice, "claims", 5)

    first = notifications_claim(limit=3)
    second = notifications_claim(limit=3)

    assert first is not None
    assert second is not None
    assert (len(first.rows), len(second.rows)) == (3, 2)
    assert not {row.pk for row in first.rows} & {row.pk for row in second.rows}
    assert notifications_claim() is None


def test_a_drain_out_of_time_gives_its_rows_back_due_and_uncounted(alice, smtp_server) -> None:
    notifications_make(alice, "deadline", 3)
    claim = notifications_claim()
    assert claim is not None

    result = claim_send(claim, deadline=time.monotonic() - 1)

    assert (result.sent, result.stopped) == (0, "deadline")
    rows = EmailNotification.objects.all()
    assert {(row.state, row.attempts, row.claim) for row in rows} == {("pending", 0, None)}
    assert all(row.next_attempt_at <= timezone.now() and row.dispatched_at for row in rows)
    assert smtp_server.handler.messages == []


def test_a_bounce_arriving_while_a_batch_is_sent_stops_the_next_send_to_that_address(alice, smtp_server) -> None:
    first, bounced, after = notifications_make(alice, "bounce", 3)
    EmailNotification.objects.filter(pk=after.pk).update(to_email=bounced.to_email)  # a second email to it
    claim = notifications_claim()
    assert claim is not None
    suppression_add(email=bounced.to_email, reason="bounce")  # after the claim looked at the list
    claim.checked_at -= SUPPRESSION_RECHECK_SECONDS  # the batch has been going for that long

    result = claim_send(claim, deadline=time.monotonic() + 5)

    assert result.sent == 1
    assert smtp_server.message_ids() == [first.message_id]
    assert {row.state for row in EmailNotification.objects.exclude(pk=first.pk)} == {"suppressed"}


def test_a_row_claimed_again_after_its_lease_is_not_recorded_by_the_old_claim(alice, smtp_server) -> None:
    (row,) = notifications_make(alice, "lease", 1)
    old = notifications_claim()
    EmailNotification.objects.filter(pk=row.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    new = notifications_claim()
    assert old is not None
    assert new is not None

    claim_send(old, deadline=time.monotonic() - 1)  # the old claim gives back what it no longer holds

    row.refresh_from_db()
    assert (row.state, row.claim) == ("sending", new.token)


def test_the_sweep_stamps_retries_come_due_and_rows_a_dead_worker_left(alice) -> None:
    retry, orphan, waiting, _fresh = notifications_make(alice, "sweep", 4)
    now = timezone.now()
    EmailNotification.objects.filter(pk=retry.pk).update(next_attempt_at=now, dispatched_at=None)
    EmailNotification.objects.filter(pk=orphan.pk).update(
        state="sending", lease_until=now - timedelta(seconds=1), dispatched_at=now - timedelta(seconds=30)
    )
    EmailNotification.objects.filter(pk=waiting.pk).update(next_attempt_at=now + timedelta(60), dispatched_at=None)
    # ``fresh`` was stamped when it was created: its drain is on the way

    assert emails_due_claim() == 2
    stamped = EmailNotification.objects.filter(dispatched_at__gte=now).values_list("pk", flat=True)
    assert set(stamped) == {retry.pk, orphan.pk}
    assert emails_due_claim() == 0  # stamped: not published again until the stamp is stale


def test_a_stamp_older_than_the_redispatch_delay_is_published_again(alice, settings) -> None:
    (row,) = notifications_make(alice, "stale", 1)
    EmailNotification.objects.filter(pk=row.pk).update(
        dispatched_at=timezone.now() - timedelta(seconds=settings.EMAIL_REDISPATCH_SECONDS + 1)
    )

    assert emails_due_claim() == 1


def test_a_burst_gets_a_drain_per_claim_up_to_the_limit(settings) -> None:
    settings.EMAIL_DRAINS_MAX = 3

    assert [drains_wanted(count) for count in (1, CLAIM_BATCH, CLAIM_BATCH + 1, 1000)] == [1, 1, 2, 3]


def test_a_failure_of_the_server_itself_stops_the_batch_and_a_message_s_does_not() -> None:
    refused = smtp_verdict(ConnectionRefusedError(111, "Connection refused"))
    closing = smtp_verdict(smtplib.SMTPSenderRefused(421, b"4.3.2 Shutting down", "from@x"))
    busy = smtp_verdict(smtplib.SMTPRecipientsRefused({"a@b": (450, b"4.2.1 Mailbox busy")}))
    bad_auth = smtp_verdict(smtplib.SMTPAuthenticationError(535, b"5.7.8 Bad credentials"))

    assert (refused.server_down, closing.server_down, busy.server_down) == (True, True, False)
    assert (bad_auth.server_down, bad_auth.permanent) == (True, False)  # ours to fix: retried, not failed
