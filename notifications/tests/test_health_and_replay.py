"""Endpoint health (circuit breaker, unhealthy warning, disabling after the failure period,
both emails) and sending again (retry one, replay many with a dry run, ping)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from notifications.models import Delivery, EmailNotification, NotificationAddress, WebhookEndpoint
from notifications.services.delivery import delivery_attempt
from notifications.services.fanout import event_fan_out
from notifications.subscribers import events_notify
from notifications.tests.conftest import Reply
from notifications.tests.factories import endpoint_make, event_announce
from workers.models import OutboxMessage

pytestmark = pytest.mark.django_db


def _confirmed_address(tenant, email: str = "ops@alice.example") -> None:
    NotificationAddress.objects.create(
        retailer=tenant.retailer,
        email=email,
        confirmed_at=timezone.now(),
        token_hash="x",
        token_expires_at=timezone.now(),
    )


def _attempt_now(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id).update(circuit_open_until=None)
    delivery_attempt(delivery_id=delivery.pk)


def test_the_circuit_opens_after_repeated_failures_and_holds_deliveries_back(settings, alice, endpoint_server) -> None:
    settings.WEBHOOK_CIRCUIT_FAILURES = 2
    server = endpoint_server()
    server.default = Reply(status=500)
    endpoint, _ = endpoint_make(alice, server.url())
    first, second, third = (event_announce(alice)[0] for _ in range(3))

    delivery_attempt(delivery_id=first.pk)
    delivery_attempt(delivery_id=second.pk)
    delivery_attempt(delivery_id=third.pk)

    endpoint.refresh_from_db()
    third.refresh_from_db()
    assert endpoint.circuit_open_until > timezone.now()
    assert len(server.received) == 2
    assert (third.attempts, third.state) == (0, Delivery.State.PENDING)
    assert third.next_attempt_at == endpoint.circuit_open_until


def test_failing_for_the_period_disables_the_endpoint_with_both_emails(settings, alice, endpoint_server) -> None:
    settings.WEBHOOK_CIRCUIT_FAILURES = 3
    _confirmed_address(alice)
    server = endpoint_server()
    server.default = Reply(status=500)
    endpoint, _ = endpoint_make(alice, server.url())
    (delivery,) = event_announce(alice)
    for _ in range(7):
        _attempt_now(delivery)
    assert EmailNotification.objects.filter(kind="endpoint.unhealthy").count() == 1
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(first_failure_at=timezone.now() - timedelta(days=5))

    _attempt_now(delivery)

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "no successful delivery" in endpoint.disabled_reason
    (announced,) = OutboxMessage.objects.filter(kwargs__topic="endpoint.disabled")
    with transaction.atomic():
        events_notify(
            [
                {
                    "topic": "endpoint.disabled",
                    "key": announced.kwargs["key"],
                    "version": announced.kwargs["version"],
                    **announced.kwargs["payload"],
                }
            ]
        )
    assert EmailNotification.objects.filter(kind="endpoint.disabled", to_email="ops@alice.example").count() == 1
    assert EmailNotification.objects.filter(kind="endpoint.unhealthy").count() == 1


def test_events_are_kept_while_disabled_and_replayed_after_re_enabling(alice, endpoint_server) -> None:
    server = endpoint_server()
    endpoint, secret = endpoint_make(alice, server.url())
    client = alice.client()
    client.patch(f"/v1/webhook-endpoints/{endpoint.pk}", {"enabled": False}, format="json")
    for _ in range(3):
        event_announce(alice)
    event_announce(alice, topic="backup.completed")  # not subscribed: no delivery at all

    refused = client.post(f"/v1/webhook-endpoints/{endpoint.pk}/replay", {"dry_run": False}, format="json")
    client.patch(f"/v1/webhook-endpoints/{endpoint.pk}", {"enabled": True}, format="json")
    counted = client.post(f"/v1/webhook-endpoints/{endpoint.pk}/replay", {"states": ["held"]}, format="json")
    replayed = client.post(
        f"/v1/webhook-endpoints/{endpoint.pk}/replay", {"states": ["held"], "dry_run": False}, format="json"
    )
    for delivery in Delivery.objects.filter(endpoint=endpoint):
        delivery_attempt(delivery_id=delivery.pk)

    assert refused.status_code == 409
    assert counted.json() == {"matched": 3, "dry_run": True}
    assert replayed.json() == {"matched": 3, "dry_run": False}
    assert len(server.received) == 3
    for request in server.received:
        Webhook(secret).verify(request.body, request.headers)
    assert set(Delivery.objects.values_list("state", flat=True)) == {Delivery.State.SUCCEEDED}


def test_replay_filters_by_type_and_time(alice) -> None:
    endpoint, _ = endpoint_make(alice, "http://127.0.0.1:9/a", ["prices.changed", "backup.failed"])
    event_announce(alice, occurred_at=(timezone.now() - timedelta(days=2)).isoformat())
    event_announce(alice)
    event_announce(alice, topic="backup.failed")
    url = f"/v1/webhook-endpoints/{endpoint.pk}/replay"
    since = (timezone.now() - timedelta(days=1)).isoformat()

    by_type = alice.client().post(url, {"event_types": ["prices.changed"]}, format="json").json()
    by_time = alice.client().post(url, {"since": since}, format="json").json()

    assert (by_type["matched"], by_time["matched"]) == (2, 2)


def test_retry_one_delivery_and_list_it_with_its_attempts(alice, endpoint_server) -> None:
    server = endpoint_server()
    server.replies.append(Reply(status=400, body=b"bad payload"))
    endpoint, _ = endpoint_make(alice, server.url())
    (delivery,) = event_announce(alice)
    delivery_attempt(delivery_id=delivery.pk)

    retried = alice.client().post(f"/v1/webhook-deliveries/{delivery.pk}/retry")
    delivery_attempt(delivery_id=delivery.pk)
    listed = alice.client().get(f"/v1/webhook-endpoints/{endpoint.pk}/deliveries").json()

    assert retried.status_code == 202
    (row,) = listed["results"]
    assert row["state"] == "succeeded"
    assert [(a["status_code"], a["response_excerpt"]) for a in row["attempt_rows"]] == [
        (400, "bad payload"),
        (200, "ok"),
    ]
    assert server.received[0].headers["webhook-id"] == server.received[1].headers["webhook-id"]


def test_another_retailer_cannot_retry_a_delivery(alice, bob) -> None:
    endpoint_make(alice, "http://127.0.0.1:9/a")
    (delivery,) = event_announce(alice)

    assert bob.client().post(f"/v1/webhook-deliveries/{delivery.pk}/retry").status_code == 404


def test_ping_sends_a_signed_test_event_to_that_endpoint_only(alice, endpoint_server) -> None:
    server, other = endpoint_server(), endpoint_server()
    endpoint, secret = endpoint_make(alice, server.url())
    endpoint_make(alice, other.url())

    answer = alice.client().post(f"/v1/webhook-endpoints/{endpoint.pk}/ping")
    delivery_attempt(delivery_id=answer.json()["id"])

    assert answer.status_code == 202
    (request,) = server.received
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "ping"
    assert other.received == []


def test_an_event_without_a_retailer_reaches_nobody(alice) -> None:
    endpoint_make(alice, "http://127.0.0.1:9/a")

    assert event_fan_out(event={"topic": "prices.changed", "key": "k", "version": 1}) == 0
