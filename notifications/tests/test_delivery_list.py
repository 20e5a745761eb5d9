"""An endpoint's delivery list: newest first, cursor-paginated, stable while deliveries arrive."""

from __future__ import annotations

import base64

import pytest

from notifications.models import Delivery
from notifications.tests.factories import endpoint_make, event_announce

pytestmark = pytest.mark.django_db


def _ids(page: dict) -> list[int]:
    return [row["id"] for row in page["results"]]


def test_pages_walk_every_delivery_newest_first_once_while_new_ones_arrive(alice) -> None:
    endpoint, _ = endpoint_make(alice, "http://127.0.0.1:9/hook")
    made = [event_announce(alice)[0].pk for _ in range(7)]
    client = alice.client()

    first = client.get(f"/v1/webhook-endpoints/{endpoint.pk}/deliveries", {"page_size": 3}).json()
    event_announce(alice)  # a newer delivery between two pages moves nothing
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    assert _ids(first) + _ids(second) + _ids(third) == sorted(made, reverse=True)
    assert third["next"] is None
    assert first["results"][0]["attempt_rows"] == []


def test_the_default_page_is_50_and_the_state_filter_pages_too(alice) -> None:
    endpoint, _ = endpoint_make(alice, "http://127.0.0.1:9/hook")
    for _ in range(52):
        event_announce(alice)
    Delivery.objects.filter(pk__in=Delivery.objects.order_by("pk").values("pk")[:2]).update(state=Delivery.State.FAILED)
    client = alice.client()

    everything = client.get(f"/v1/webhook-endpoints/{endpoint.pk}/deliveries").json()
    failed = client.get(f"/v1/webhook-endpoints/{endpoint.pk}/deliveries", {"state": "failed"}).json()

    assert len(everything["results"]) == 50
    assert everything["next"] is not None
    assert {row["state"] for row in failed["results"]} == {"failed"}
    assert (len(failed["results"]), failed["next"]) == (2, None)


@pytest.mark.parametrize(
    "query",
    [
        {"page_size": "0"},
        {"page_size": "201"},
        {"page_size": "ten"},
        {"cursor": "not-a-cursor"},
        {"cursor": base64.b64encode(b"p=2025-01-01").decode()},  # a position that is not an id
        {"state": "lost"},
    ],
)
def test_an_unreadable_page_request_is_a_400_naming_the_parameter(alice, query: dict) -> None:
    endpoint, _ = endpoint_make(alice, "http://127.0.0.1:9/hook")

    answer = alice.client().get(f"/v1/webhook-endpoints/{endpoint.pk}/deliveries", query)

    assert answer.status_code == 400
    assert answer.json()["error"]["details"][0]["field"] == next(iter(query))
