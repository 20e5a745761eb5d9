"""Email: confirmation first, sent once per notification id (Message-ID from the id), SMTP
failures classified, the suppression list fed by 5.1.x / 5.2.x answers and by bounces."""

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
from notifications.services.email import (
    SendInFlightError,
    notification_enqueue,
    notification_enqueue_for_retailer,
    notification_send,
)
from workers.errors import PermanentError, TransientError
from workers.models import OutboxMessage

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
    assert OutboxMessage.objects.filter(kwargs__notification_id=str(confirm.pk)).exists()

    notification_send(notification_id=str(confirm.pk))

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
    notification_send(notification_id=str(EmailNotification.objects.get(kind="address.confirm").pk))
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

    states = [notification_send(notification_id=str(row.pk)) for _ in range(3)]  # redeliveries

    assert states == ["sent", "sent", "sent"]
    assert smtp_server.message_ids() == [f"<{row.pk}@storefabric>"]
    assert "text/html" in _body(smtp_server.handler.messages[0])


def test_a_row_being_sent_elsewhere_is_not_sent_again_and_its_message_retries(alice, smtp_server) -> None:
    row = _notification(alice)
    EmailNotification.objects.filter(pk=row.pk).update(state="sending", lease_until=timezone.now() + timedelta(60))

    with pytest.raises(SendInFlightError):  # transient: the message stays until that run's outcome
        notification_send(notification_id=str(row.pk))
    assert smtp_server.handler.messages == []
    assert issubclass(SendInFlightError, TransientError)


def test_a_row_whose_sender_died_is_sent_again_after_its_lease(alice, smtp_server) -> None:
    row = _notification(alice)
    EmailNotification.objects.filter(pk=row.pk).update(state="sending", lease_until=timezone.now() - timedelta(1))

    assert notification_send(notification_id=str(row.pk)) == "sent"
    assert smtp_server.message_ids() == [f"<{row.pk}@storefabric>"]


def test_a_4xx_retries_and_suppresses_nothing(alice, smtp_server) -> None:
    row = _notification(alice)
    smtp_server.handler.rcpt_answers.append("451 4.3.0 Try again later")

    with pytest.raises(TransientError):
        notification_send(notification_id=str(row.pk))
    row.refresh_from_db()
    assert (row.state, Suppression.objects.count()) == ("pending", 0)

    assert notification_send(notification_id=str(row.pk)) == "sent"
    assert len(smtp_server.handler.messages) == 1


def test_a_5_1_1_fails_the_notification_and_suppresses_the_address(alice, smtp_server) -> None:
    row = _notification(alice)
    smtp_server.handler.rcpt_answers.append("550 5.1.1 No such user")

    with pytest.raises(PermanentError):
        notification_send(notification_id=str(row.pk))
    later = _notification(alice, kind="backup.failed")

    assert notification_send(notification_id=str(later.pk)) == "suppressed"
    row.refresh_from_db()
    assert row.state == "failed"
    assert Suppression.objects.get().email == "ops@alice.example"
    assert smtp_server.handler.messages == []


def test_a_policy_5xx_fails_the_notification_but_keeps_the_address(alice, smtp_server) -> None:
    row = _notification(alice)
    smtp_server.handler.rcpt_answers.append("550 5.7.1 Relaying denied")

    with pytest.raises(PermanentError):
        notification_send(notification_id=str(row.pk))

    assert not Suppression.objects.exists()


def test_smtp_down_then_up(alice, settings, smtp_server) -> None:
    row = _notification(alice)
    settings.EMAIL_PORT = 1  # nobody listens there: connection refused

    with pytest.raises(TransientError):
        notification_send(notification_id=str(row.pk))
    settings.EMAIL_PORT = smtp_server.port

    assert notification_send(notification_id=str(row.pk)) == "sent"
    assert smtp_server.message_ids() == [f"<{row.pk}@storefabric>"]


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
    assert notification_send(notification_id=str(row.pk)) == "suppressed"
    row.refresh_from_db()
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
