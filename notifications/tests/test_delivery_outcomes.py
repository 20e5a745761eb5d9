"""One attempt against a real local endpoint, and what each answer does to the delivery."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from notifications.models import Delivery, WebhookEndpoint
from notifications.schedule import MAX_ATTEMPTS, RETRY_DELAYS_SECONDS, retry_delay
from notifications.services.delivery import delivery_attempt
from notifications.services.endpoints import endpoint_secret_rotate
from notifications.tests.conftest import Reply
from notifications.tests.factories import endpoint_make, event_announce
from workers.models import OutboxMessage

pytestmark = pytest.mark.django_db


def _send(tenant, server, reply: Reply | None = None) -> tuple[Delivery, WebhookEndpoint, str]:
    if reply:
        server.replies.append(reply)
    endpoint, secret = endpoint_make(tenant, server.url())
    (delivery,) = event_announce(tenant, skus=[{"sku": "A-1", "old": "10.00", "new": "9.00"}])
    delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    return delivery, endpoint, secret


def test_a_2xx_succeeds_and_verifies_at_real_time(alice, endpoint_server) -> None:
    server = endpoint_server()

    delivery, endpoint, secret = _send(alice, server)

    assert delivery.state == Delivery.State.SUCCEEDED
    (request,) = server.received
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "prices.changed"
    assert payload["data"]["skus"] == [{"sku": "A-1", "old": "10.00", "new": "9.00"}]
    assert request.headers["webhook-id"] == delivery.event.public_id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert endpoint.last_success_at is not None
    assert list(delivery.attempt_rows.values_list("status_code", "outcome")) == [(200, "succeeded")]


def test_410_disables_the_endpoint_and_announces_it(alice, endpoint_server) -> None:
    delivery, endpoint, _ = _send(alice, endpoint_server(), Reply(status=410))

    assert delivery.state == Delivery.State.FAILED
    assert not endpoint.enabled
    assert "410" in endpoint.disabled_reason
    assert OutboxMessage.objects.filter(kwargs__topic="endpoint.disabled", kwargs__payload__endpoint_id=endpoint.pk)


def test_429_waits_for_retry_after(alice, endpoint_server) -> None:
    before = timezone.now()
    delivery, _, _ = _send(alice, endpoint_server(), Reply(status=429, headers={"Retry-After": "3600"}))

    assert delivery.state == Delivery.State.PENDING
    assert delivery.next_attempt_at >= before + timedelta(seconds=3600)


def test_503_without_retry_after_follows_the_schedule(alice, endpoint_server) -> None:
    before = timezone.now()
    delivery, endpoint, _ = _send(alice, endpoint_server(), Reply(status=503))

    assert delivery.state == Delivery.State.PENDING
    assert delivery.attempts == 1
    assert before + timedelta(seconds=3.9) <= delivery.next_attempt_at <= timezone.now() + timedelta(seconds=6.1)
    assert endpoint.consecutive_failures == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_are_permanent(alice, endpoint_server, status: int) -> None:
    delivery, endpoint, _ = _send(alice, endpoint_server(), Reply(status=status))

    assert delivery.state == Delivery.State.FAILED
    assert endpoint.enabled


def test_408_is_retried(alice, endpoint_server) -> None:
    delivery, _, _ = _send(alice, endpoint_server(), Reply(status=408))

    assert delivery.state == Delivery.State.PENDING


def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(alice, endpoint_server) -> None:
    server = endpoint_server()
    delivery, _, _ = _send(alice, server, Reply(status=307, headers={"Location": server.url("/moved")}))

    assert [request.path for request in server.received] == ["/hook"]
    assert delivery.state == Delivery.State.PENDING
    assert delivery.attempt_rows.get().status_code == 307


def test_a_timeout_is_recorded_and_retried(settings, alice, endpoint_server) -> None:
    settings.OUTBOUND_HTTP_TOTAL_TIMEOUT = 0.5
    delivery, _, _ = _send(alice, endpoint_server(), Reply(delay=2.0))

    attempt = delivery.attempt_rows.get()
    assert attempt.status_code is None
    assert attempt.error.startswith("timeout")
    assert delivery.state == Delivery.State.PENDING


def test_after_rotation_both_secrets_verify(alice, endpoint_server) -> None:
    server = endpoint_server()
    endpoint, old = endpoint_make(alice, server.url())
    new = endpoint_secret_rotate(endpoint=endpoint).secret
    (delivery,) = event_announce(alice)

    delivery_attempt(delivery_id=delivery.pk)

    (request,) = server.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(request.body, request.headers)
    Webhook(new).verify(request.body, request.headers)


def test_a_second_claim_of_a_finished_delivery_sends_nothing(alice, endpoint_server) -> None:
    server = endpoint_server()
    delivery, _, _ = _send(alice, server)

    assert delivery_attempt(delivery_id=delivery.pk) is None
    assert len(server.received) == 1


def test_the_schedule_is_svix_s_with_jitter() -> None:
    middle = [retry_delay(n, jitter=lambda: 0.5).total_seconds() for n in range(1, MAX_ATTEMPTS)]
    low = retry_delay(2, jitter=lambda: 0.0).total_seconds()
    high = retry_delay(2, jitter=lambda: 1.0).total_seconds()

    assert middle == [float(s) for s in RETRY_DELAYS_SECONDS] == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert MAX_ATTEMPTS == 8
    assert round(sum(middle) / 3600, 1) == 27.6
    assert (low, high) == (240.0, 360.0)
    assert retry_delay(MAX_ATTEMPTS) is None


def test_the_eighth_failure_fails_the_delivery(alice, endpoint_server) -> None:
    server = endpoint_server()
    server.default = Reply(status=500)
    endpoint, _ = endpoint_make(alice, server.url())
    (delivery,) = event_announce(alice)
    for _ in range(MAX_ATTEMPTS):
        Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(circuit_open_until=None)
        delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.FAILED
    assert delivery.attempts == MAX_ATTEMPTS
    assert len(server.received) == MAX_ATTEMPTS
