"""One shopper cannot lock out the others: the price API limits publishable-key traffic per client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from pricing.tests.conftest import product_put
from workers.testing import WebServer

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_LIMIT = 3


@pytest.fixture
def client_limit(settings) -> int:
    settings.RATE_LIMIT_PER_CLIENT_PER_MINUTE = CLIENT_LIMIT
    return CLIENT_LIMIT


def price_from(tenant, address: str):
    return Client().get(f"/v1/prices/SHOE-1?key={tenant.publishable_key}", REMOTE_ADDR=address)


def test_a_client_over_its_limit_gets_429_while_another_shopper_keeps_getting_200(alice, client_limit) -> None:
    product_put(alice, "SHOE-1", base_price="19.99")
    flood = [price_from(alice, "198.51.100.9").status_code for _ in range(client_limit + 2)]
    assert flood == [200] * client_limit + [429] * 2
    refused = price_from(alice, "198.51.100.9")
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert [price_from(alice, "203.0.113.4").status_code for _ in range(client_limit)] == [200] * client_limit


def test_the_batch_lookup_is_limited_per_client_too(alice, client_limit) -> None:
    product_put(alice, "SHOE-1")
    url = f"/v1/prices?skus=SHOE-1,SHOE-2&key={alice.publishable_key}"
    statuses = [Client().get(url, REMOTE_ADDR="2001:db8:7:7::1").status_code for _ in range(client_limit + 1)]
    assert statuses == [200] * client_limit + [429]
    assert Client().get(url, REMOTE_ADDR="2001:db8:7:8::1").status_code == 200


@pytest.fixture
def web(request, alice) -> Iterator[WebServer]:
    """gunicorn with the per-client limit; ``TRUSTED_PROXY_COUNT`` from the test's parameter, if any."""
    product_put(alice, "SHOE-1")
    env = {"RATE_LIMIT_PER_CLIENT_PER_MINUTE": str(CLIENT_LIMIT), **getattr(request, "param", {})}
    server = WebServer(extra_env=env)
    yield server
    server.process.stop()


def test_through_gunicorn_forged_x_forwarded_for_is_limited_as_one_client(alice, web) -> None:
    """The default ``TRUSTED_PROXY_COUNT=0``: the socket's peer is the client, whatever it forwards."""
    path = f"/v1/prices/SHOE-1?key={alice.publishable_key}"
    forged = [web.get(path, {"X-Forwarded-For": f"198.51.100.{n}"})[0] for n in range(CLIENT_LIMIT + 3)]
    assert forged == [200] * CLIENT_LIMIT + [429] * 3


@pytest.mark.parametrize("web", [{"TRUSTED_PROXY_COUNT": "1"}], indirect=True)
def test_behind_one_trusted_proxy_each_forwarded_address_is_its_own_client(alice, web) -> None:
    """What the load tests and benchmarks rely on to simulate many shoppers from one machine."""
    path = f"/v1/prices/SHOE-1?key={alice.publishable_key}"
    shoppers = [web.get(path, {"X-Forwarded-For": f"6.6.6.6, 198.51.100.{n}"})[0] for n in range(CLIENT_LIMIT + 3)]
    assert shoppers == [200] * (CLIENT_LIMIT + 3)
    one = [web.get(path, {"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.1"})[0] for n in range(CLIENT_LIMIT + 1)]
    assert one == [200] * CLIENT_LIMIT + [429]  # only the entry our proxy wrote counts
