"""Admin: endpoints without their secrets, deliveries with attempts, retry and ping actions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from notifications.models import Delivery, WebhookEvent
from notifications.services.delivery import delivery_attempt
from notifications.tests.conftest import Reply
from notifications.tests.factories import endpoint_make, event_announce

HTTPS = {"HTTP_X_FORWARDED_PROTO": "https"}


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(User.objects.create(username="ops", is_staff=True, is_superuser=True))
    return client


def test_the_endpoint_page_never_shows_the_secret(staff, alice) -> None:
    endpoint, secret = endpoint_make(alice, "http://127.0.0.1:9/a")

    page = staff.get(f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/", **HTTPS)

    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert endpoint.secret_encrypted not in page.content.decode()


def test_retry_and_ping_actions(staff, alice, endpoint_server) -> None:
    server = endpoint_server()
    server.replies.append(Reply(status=400, body=b"nope"))
    endpoint, _ = endpoint_make(alice, server.url())
    (delivery,) = event_announce(alice)
    delivery_attempt(delivery_id=delivery.pk)

    shown = staff.get(f"/admin/notifications/delivery/{delivery.pk}/change/", **HTTPS)
    staff.post("/admin/notifications/delivery/", {"action": "retry", "_selected_action": [delivery.pk]}, **HTTPS)
    staff.post(
        "/admin/notifications/webhookendpoint/", {"action": "send_ping", "_selected_action": [endpoint.pk]}, **HTTPS
    )
    delivery_attempt(delivery_id=delivery.pk)

    assert "nope" in shown.content.decode()
    delivery.refresh_from_db()
    assert delivery.state == Delivery.State.SUCCEEDED
    assert WebhookEvent.objects.filter(event_type="ping").count() == 1
