"""A slot's deliveries go over one kept-alive connection (``outbound_http.Session``) where the
endpoint keeps it open, and over a connection each where it does not; a connection the endpoint
closed while idle, or one with a body left unread, is replaced without losing or repeating a
delivery."""

from __future__ import annotations

from collections import Counter

import pytest

from app import outbound_http
from app.outbound_http import BODY_LIMIT
from notifications.models import Delivery
from notifications.services.delivery import endpoint_drain
from notifications.tests.conftest import EndpointServer, Reply
from notifications.tests.factories import endpoint_make, event_announce

pytestmark = pytest.mark.django_db


def _drain(tenant, server: EndpointServer, count: int) -> list[Delivery]:
    endpoint, _ = endpoint_make(tenant, server.url())
    deliveries = [event_announce(tenant)[0] for _ in range(count)]
    assert endpoint_drain(endpoint_id=endpoint.pk) == count
    return deliveries


def _each_received_once(server: EndpointServer, deliveries: list[Delivery]) -> bool:
    received = Counter(request.headers["webhook-id"] for request in server.received)
    return received == Counter(delivery.event.public_id for delivery in deliveries)


def test_a_slot_s_deliveries_share_one_kept_alive_connection(alice, endpoint_server) -> None:
    server = endpoint_server()

    deliveries = _drain(alice, server, 5)

    assert _each_received_once(server, deliveries)
    assert server.connections() == 1
    assert set(Delivery.objects.values_list("state", flat=True)) == {Delivery.State.SUCCEEDED}


def test_an_http_1_0_endpoint_gets_a_connection_per_delivery(alice, endpoint_server) -> None:
    server = endpoint_server("HTTP/1.0")

    deliveries = _drain(alice, server, 3)

    assert _each_received_once(server, deliveries)
    assert server.connections() == 3


def test_a_connection_the_endpoint_closed_while_idle_is_replaced_and_nothing_is_lost_or_sent_twice(
    alice, endpoint_server
) -> None:
    server = endpoint_server()
    server.replies = [Reply(), Reply(hang_up=True)]  # its server's keep-alive timeout, after the second

    deliveries = _drain(alice, server, 4)

    assert _each_received_once(server, deliveries)
    assert server.connections() == 2
    assert Delivery.objects.filter(state=Delivery.State.SUCCEEDED, attempts=1).count() == 4


def test_an_answer_longer_than_what_we_read_ends_its_connection(alice, endpoint_server) -> None:
    server = endpoint_server()
    server.replies = [Reply(body=b"x" * (BODY_LIMIT * 4))]

    deliveries = _drain(alice, server, 2)

    assert _each_received_once(server, deliveries)
    assert server.connections() == 2


def test_an_answer_late_on_a_kept_alive_connection_is_a_timeout_and_is_not_sent_again(endpoint_server) -> None:
    server = endpoint_server()
    server.replies = [Reply(), Reply(delay=1.5)]
    with outbound_http.Session() as session:
        session.post(server.url(), body=b"{}", headers={}, total_timeout=0.5)

        with pytest.raises(outbound_http.OutboundError) as late:
            session.post(server.url(), body=b"{}", headers={}, total_timeout=0.5)

    assert late.value.kind == "timeout"
    assert len(server.received) == 2  # the late one was not sent once more on a new connection
