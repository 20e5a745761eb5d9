"""The documented maximums pass through the real web server, and what it refuses is still our JSON.

A real gunicorn (production's ``app/gunicorn_conf.py``) serves the test database: Django's test
client never sees the request line, so only a server in front of the app can show that
``GET /v1/prices`` with 100 SKUs of 64 characters fits (gunicorn's default ``limit_request_line``
of 4,094 answered it with an HTML 414), and that the largest documented bodies (an events batch
of 500 events, a bulk write of 10,000 products) are let through to the app's own limits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from django.utils import timezone

from analytics.apis import MAX_BATCH_BYTES
from analytics.validation import MAX_EVENTS
from conftest import Tenant
from pricing.apis.catalog import BULK_BODY_LIMIT
from pricing.hotpath import MAX_SKUS, MAX_VISITOR_LENGTH
from pricing.services import products_bulk_upsert
from pricing.services.products import BULK_MAX_ROWS
from workers.testing import WebServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
LONGEST_SKU = 64


def product(sku: str) -> dict[str, object]:
    """A product row with every field at its longest documented size."""
    return {
        "sku": sku,
        "name": "N" * 200,
        "currency": "USD",
        "base_price": "99999.99",
        "cost": "10000.00",
        "list_price": "99999.99",
        "inventory": 2_000_000_000,
        "active": True,
    }


def long_sku(number: int) -> str:
    return f"{number:04d}".ljust(LONGEST_SKU, "S")


def error_of(body: str) -> dict[str, str]:
    error: dict[str, str] = json.loads(body)["error"]
    return error


@pytest.fixture
def web(web_server: Callable[..., WebServer]) -> WebServer:
    return web_server()


def test_the_longest_documented_price_lookup_answers_200(web: WebServer, alice: Tenant) -> None:
    skus = [long_sku(number) for number in range(MAX_SKUS)]
    products_bulk_upsert(retailer_id=alice.retailer.id, rows=[product(sku) for sku in skus], actor="test")
    path = f"/v1/prices?skus={','.join(skus)}&key={alice.publishable_key}&visitor={'v' * MAX_VISITOR_LENGTH}&explain=1"
    assert len(path) > 6_500  # over gunicorn's default limit of 4,094 with room to spare

    status, _, body = web.send("GET", path, headers={"Origin": alice.origin, "User-Agent": BROWSER})

    assert status == 200, body[:500]
    assert sorted(price["sku"] for price in json.loads(body)["prices"]) == skus


def test_the_largest_documented_events_batch_answers_202(web: WebServer, alice: Tenant, broker_redis: object) -> None:
    now = timezone.now().isoformat()
    events = [
        {
            "id": str(uuid.uuid4()),
            "type": "purchase",
            "ts": now,
            "session": "s" * 128,
            "sku": long_sku(number),
            "variant": "v" * 32,
            "quantity": 100_000,
            "price": "99999999.9999",
        }
        for number in range(MAX_EVENTS)
    ]
    body = json.dumps({"events": events}).encode()
    assert len(body) <= MAX_BATCH_BYTES

    status, _, answer = web.send(
        "POST",
        f"/v1/events?key={alice.publishable_key}",
        body=body,
        headers={"Origin": alice.origin, "Content-Type": "text/plain", "User-Agent": BROWSER},
    )

    assert status == 202, answer[:500]
    assert json.loads(answer)["accepted"] == MAX_EVENTS


def test_the_largest_documented_bulk_write_answers_200(web: WebServer, alice: Tenant) -> None:
    body = json.dumps({"products": [product(long_sku(number)) for number in range(BULK_MAX_ROWS)]}).encode()
    assert len(body) <= BULK_BODY_LIMIT

    status, _, answer = web.send(
        "POST",
        "/v1/products/bulk",
        body=body,
        headers={"Authorization": f"Bearer {alice.secret_key}", "Content-Type": "application/json"},
        timeout=120,
    )

    assert status == 200, answer[:500]
    assert json.loads(answer)["created"] == BULK_MAX_ROWS


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        pytest.param("/v1/prices?skus=" + "A" * 9_000, {}, 414, "request_line_too_large", id="request line"),
        pytest.param("/v1/prices?skus=A", {"X-Padding": "p" * 9_000}, 431, "request_headers_too_large", id="header"),
    ],
)
def test_a_request_the_server_refuses_answers_the_json_envelope(
    web: WebServer, path: str, headers: dict[str, str], status: int, code: str
) -> None:
    answered, response_headers, body = web.send("GET", path, headers=headers)

    assert answered == status
    assert response_headers["content-type"] == "application/json"
    error = error_of(body)
    assert error["code"] == code
    assert error["request_id"] == response_headers["x-request-id"]
    access = [line for line in web.process.events("http_access") if line["status"] == status]
    assert [line["request_id"] for line in access] == [error["request_id"]]
