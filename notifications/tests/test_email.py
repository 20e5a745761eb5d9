"""Email: confirmation first, sent once per notification id (Message-ID from the id), SMTP
failures classified and retried from the row, the suppression list fed by 5.1.x / 5.2.x
answers and by bounces.

The drains run here in the test's process (``emails_drain``, what the ``email_drain`` task
runs); the worker, kill and redelivery behaviour is in ``test_email_faults`` and
``test_workers_isolation``."""

from __future__ import annotations

import base64
import smtplib
from datetime import timedelta
from urllib.parse import urlsplit

import orjson
import pytest
from django.db import transaction
from django.utils import timezone

from notifications.models import EmailNotification, NotificationAddress, Suppression
from notifications.services.email import notification_enqueue, notification_enqueue_for_retailer
from notifications.services.email_drain import MAX_ATTEMPTS, emails_drain

pytestmark = pytest.mark.django_db


def _notification(tenant, email: str = "ops@alice.example", kind: str = "backup.completed") -> EmailNotification:
    with transaction.atomic():
        return notification_enqueue(
            retailer_id=tenant.retailer.pk,
            to_email=email,
            kind=kind,
            context={"backup_id": "b-1"},
            dedup_key=f"test:{email}:{kind}",
        )


def _state(row: EmailNotification) -> str:
    row.refresh_from_db()
    return row.state


def _due_now(row: EmailNotification) -> None:
    """The controllable clock: the row's retry comes due now."""
    EmailNotification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())


def _body(envelope) -> str:
    return envelope.content.decode() if isinstance(envelope.content, bytes) else str(envelope.content)


def test_a_new_address_gets_only_a_confirmation_until_its_link_is_followed(alice, smtp_server) -> None:
    created = alice.client().post("/v1/notification-addresses", {"email": "Ops@Alice.example"}, format="json")
    assert created.status_code == 201
    assert created.json()["confirmed"] is False
    assert (
        notification_enqueue_for_retailer(
            retailer_id=alice.retailer.pk, kind="backup.completed", context={}, dedup_key="before"
        )
        == []
    )
    confirm = EmailNotification.objects.get(kind="address.confirm")
    assert (confirm.state, confirm.dispatched_at is not None) == ("pending", True)  # due, its drain published

    assert emails_drain() == 1

    (envelope,) = smtp_server.handler.messages
    assert envelope.rcpt_tos == ["ops@alice.example"]
    link = next(word for word in _body(envelope).split() if "/v1/notification-addresses/confirm?token=" in word)
    followed = alice.client().get(urlsplit(link).path + "?" + urlsplit(link).query)
    assert followed.status_code == 200
    assert NotificationAddress.objects.get().confirmed_at is not None
    with transaction.atomic():
        after = notification_enqueue_for_retailer(
            retailer_id=alice.retailer.pk, kind="backup.completed", context={}, dedup_key="after"
        )
    assert [row.to_email for row in after] == ["ops@alice.example"]


def _confirmation_link(tenant, smtp_server) -> str:
    tenant.client().post("/v1/notification-addresses", {"email": "ops@alice.example"}, format="json")
    emails_drain()
    link = next(w for w in _body(smtp_server.handler.messages[-1]).split() if "confirm?token=" in w)
    return urlsplit(link).path + "?" + urlsplit(link).query


def test_an_expired_or_unknown_confirmation_link_is_400(alice, anon_client, smtp_server) -> None:
    link = _confirmation_link(alice, smtp_server)
    NotificationAddress.objects.update(token_expires_at=timezone.now() - timedelta(seconds=1))

    expired = anon_client.get(link)
    unknown = anon_client.get("/v1/notification-addresses/confirm?token=nope")

    assert (expired.status_code, expired.json()["error"]["code"]) == (400, "invalid_confirmation")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "invalid_confirmation")
    assert NotificationAddress.objects.get().confirmed_at is None


def test_sent_once_per_notification_id_with_a_message_id_from_it(alice, smtp_server) -> None:
    row = _notification(alice)

    drained = [emails_drain() for _ in range(3)]  # duplicate drains

    assert (drained, _state(row)) == ([1, 0, 0], "sent")
    assert smtp_server.message_ids() == [f"<{row.pk}@storefabric>"]
    assert "text/html" in _body(smtp_server.handler.messages[0])


def test_a_row_being_sent_by_another_drain_is_not_sent_again(alice, smtp_server) -> None:
    row = _notification(alice)
    EmailNotification.objects.filter(pk=row.pk).update(state="sending", lease_until=timezone.now() + timedelta(60))

    assert emails_drain() == 0
    assert smtp_server.handler.messages == []


def test_a_row_whose_sender_died_is_sent_again_after_its_lease(alice, smtp_server) -> None:
    row = _notification(alice)
    EmailNotification.objects.filter(pk=row.pk).update(
        state="sending", lease_until=timezone.now() - timedelta(1), attempts=1
    )

    assert emails_drain() == 1
    assert smtp_server.message_ids() == [f"<{row.pk}@storefabric>"]
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("sent", 2)


def test_a_4xx_retries_from_the_row_with_backoff_and_suppresses_nothing(alice, smtp_server) -> None:
    row = _notification(alice)
    smtp_server.handler.rcpt_answers.append("451 4.3.0 Try again later")

    assert emails_drain() == 0
    row.refresh_from_db()
    assert (row.state, row.attempts, Suppression.objects.count()) == ("pending", 1, 0)
    assert "451" in row.last_error
    assert row.dispatched_at is None  # the sweep publishes its drain once it is due
    assert row.next_attempt_at <= timezone.now() + timedelta(seconds=10)  # first retry: at most 10 s

    _due_now(row)
    assert emails_drain() == 1
    assert len(smtp_server.handler.messages) == 1


def test_a_4xx_for_one_address_does_not_hold_back_the_others(alice, smtp_server) -> None:
    busy = _notification(alice, email="busy@alice.example")
    other = _notification(alice, email="other@alice.example")
    smtp_server.handler.rcpt_answers.append("450 4.2.1 Mailbox busy")

    assert emails_drain() == 1

    assert (_state(busy), _state(other)) == ("pending", "sent")


def test_the_last_attempt_fails_the_notification_with_its_error(alice, smtp_server) -> None:
    row = _notification(alice)
    EmailNotification.objects.filter(pk=row.pk).update(attempts=MAX_ATTEMPTS - 1)
    smtp_server.handler.rcpt_answers.append("451 4.3.0 Try again later")

    emails_drain()

    row.refresh_from_db()
    assert (row.state, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert row.last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts: 451")


def test_a_notification_whose_sends_keep_dying_is_failed_not_claimed_forever(alice, smtp_server) -> None:
    row = _notification(alice)
    EmailNotification.objects.filter(pk=row.pk).update(
        state="sending", lease_until=timezone.now() - timedelta(1), attempts=MAX_ATTEMPTS
    )

    assert emails_drain() == 0

    row.refresh_from_db()
    assert (row.state, smtp_server.handler.messages) == ("failed", [])
    assert "died" in row.last_error


def test_a_5_1_1_fails_the_notification_and_suppresses_the_address(alice, smtp_server) -> None:
    row = _notification(alice)
    smtp_server.handler.rcpt_answers.append("550 5.1.1 No such user")

    emails_drain()
    later = _notification(alice, kind="backup.failed")
    emails_drain()

    assert (_state(row), _state(later)) == ("failed", "suppressed")
    assert Suppression.objects.get().email == "ops@alice.example"
    assert smtp_server.handler.messages == []


def test_a_policy_5xx_fails_the_notification_but_keeps_the_address(alice, smtp_server) -> None:
    row = _notification(alice)
    smtp_server.handler.rcpt_answers.append("550 5.7.1 Relaying denied")

    emails_drain()

    assert _state(row) == "failed"
    assert not Suppression.objects.exists()


def test_smtp_down_then_up(alice, settings, smtp_server) -> None:
    first = _notification(alice, email="first@alice.example")
    second = _notification(alice, email="second@alice.example")
    settings.EMAIL_PORT = 1  # nobody listens there: connection refused

    assert emails_drain() == 0
    rows = list(EmailNotification.objects.order_by("next_attempt_at"))
    assert [row.state for row in rows] == ["pending", "pending"]
    assert sorted(row.attempts for row in rows) == [0, 1]  # one tried; the one behind it waits with it, untried
    assert rows[0].next_attempt_at == rows[1].next_attempt_at
    settings.EMAIL_PORT = smtp_server.port
    EmailNotification.objects.update(next_attempt_at=timezone.now())

    assert emails_drain() == 2
    assert sorted(smtp_server.message_ids()) == sorted([first.message_id, second.message_id])


def _bounce(client, auth: str):
    event = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": "ops@alice.example",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "BouncedAt": "2026-12-03T06:00:00Z",
        "Description": "The server was unable to deliver your message",
        "ID": 42,
    }
    return client.post(
        "/anymail/postmark/tracking/",
        orjson.dumps(event),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(auth.encode()).decode(),
    )


def test_a_bounce_from_the_provider_suppresses_the_next_send(client, alice, smtp_server) -> None:
    refused = _bounce(client, "tracker:wrong")
    assert refused.status_code in (400, 401, 403)
    assert not Suppression.objects.exists()

    accepted = _bounce(client, "tracker:test-tracking-secret")

    assert accepted.status_code == 200
    assert Suppression.objects.get().reason == "bounce"
    row = _notification(alice)
    emails_drain()
    row.refresh_from_db()
    assert row.state == "suppressed"
    assert "suppression" in row.last_error
    assert smtp_server.handler.messages == []


def test_another_retailer_s_addresses_and_notifications_are_not_visible(alice, bob) -> None:
    address = alice.client().post("/v1/notification-addresses", {"email": "ops@alice.example"}, format="json").json()

    assert bob.client().delete(f"/v1/notification-addresses/{address['id']}").status_code == 404
    assert bob.client().get("/v1/notification-addresses").json() == []
    assert bob.client().get("/v1/notifications").json() == []
    assert len(alice.client().get("/v1/notifications").json()) == 1


def test_smtp_errors_are_classified_by_enhanced_status() -> None:
    from notifications.smtp_errors import smtp_verdict

    mailbox_full = smtp_verdict(smtplib.SMTPRecipientsRefused({"a@b": (552, b"5.2.2 Mailbox full")}))
    policy = smtp_verdict(smtplib.SMTPDataError(554, b"5.7.1 Message rejected as spam"))
    later = smtp_verdict(smtplib.SMTPDataError(421, b"4.7.0 Try later"))

    assert (mailbox_full.permanent, mailbox_full.suppress) == (True, True)
    assert (policy.permanent, policy.suppress) == (True, False)
    assert (later.permanent, later.suppress) == (False, False)
