"""A flood of unknown keys: bounded caches, bounded SQL, 429s for the flooding client only."""

from __future__ import annotations

import secrets

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from app.errors import ApiError
from app.redis_client import reset_for_tests
from app.tenancy.authentication import key_resolve

FLOOD = 200


@pytest.fixture(autouse=True)
def _patient_redis(settings) -> None:
    """Redis timeouts of seconds: the hot path's 50 ms (production) is sometimes too short on a
    shared test machine, and a timeout fails the limit open, which is not what these tests check."""
    settings.REDIS_SOCKET_TIMEOUT = settings.REDIS_CONNECT_TIMEOUT = 2.0
    reset_for_tests()


def _random_key() -> str:
    return f"pk_{secrets.token_urlsafe(24)}"


def _price(client: APIClient, key: str, address: str = "198.51.100.7") -> int:
    return client.get(f"/v1/prices/SKU-1?key={key}", REMOTE_ADDR=address).status_code


@pytest.mark.django_db
def test_a_flood_of_random_keys_from_one_client_costs_bounded_queries_and_ends_in_429(
    anon_client: APIClient, settings
) -> None:
    settings.AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 10
    with CaptureQueriesContext(connection) as queries:
        statuses = [_price(anon_client, _random_key()) for _ in range(FLOOD)]
    # A window boundary during the flood may give the client a second allowance, no more.
    assert len(queries) <= 2 * settings.AUTH_FAILURES_PER_CLIENT_PER_MINUTE
    assert set(statuses) == {401, 429}
    assert statuses[: settings.AUTH_FAILURES_PER_CLIENT_PER_MINUTE] == [401] * 10
    assert statuses[-1] == 429
    assert statuses.count(429) >= FLOOD - 2 * settings.AUTH_FAILURES_PER_CLIENT_PER_MINUTE


@pytest.mark.django_db
def test_the_429_names_when_to_retry_and_other_clients_are_not_limited(anon_client: APIClient, settings) -> None:
    settings.AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 3
    for _ in range(5):
        _price(anon_client, _random_key())
    refused = anon_client.get(f"/v1/prices/SKU-1?key={_random_key()}", REMOTE_ADDR="198.51.100.7")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert _price(anon_client, _random_key(), address="203.0.113.9") == 401


def test_a_flooding_client_keeps_its_valid_cached_key(alice, anon_client: APIClient, settings) -> None:
    settings.AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 3
    assert _price(anon_client, alice.publishable_key) in (200, 404)  # cached now
    for _ in range(10):
        _price(anon_client, _random_key())
    assert _price(anon_client, _random_key()) == 429
    assert _price(anon_client, alice.publishable_key) in (200, 404)


def test_valid_keys_stay_cached_and_the_caches_stay_at_their_bounds_during_a_flood(alice, bob, settings) -> None:
    from app.tenancy.authentication import key_caches  # the bounded caches (absent before them)

    settings.API_KEY_CACHE_TTL = 3600  # a slow machine must not expire the entry during the flood
    settings.API_KEY_CACHE_SIZE = 3
    settings.API_KEY_REJECTED_CACHE_SIZE = 50
    settings.AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 10**6
    key_resolve(alice.publishable_key)
    for _ in range(FLOOD):
        with pytest.raises(ApiError, match="unknown"):
            key_resolve(_random_key())
    caches = key_caches()
    assert len(caches.rejected) == settings.API_KEY_REJECTED_CACHE_SIZE
    with CaptureQueriesContext(connection) as queries:
        assert key_resolve(alice.publishable_key).retailer_id == alice.retailer.id
    assert len(queries) == 0  # the flood evicted no valid key
    for key in (alice.secret_key, bob.publishable_key, bob.secret_key):
        key_resolve(key)
    assert len(caches.known) == settings.API_KEY_CACHE_SIZE  # least recently used valid key evicted


@pytest.mark.django_db
def test_the_failed_authentication_limit_fails_open_while_redis_is_away(anon_client: APIClient, settings) -> None:
    settings.AUTH_FAILURES_PER_CLIENT_PER_MINUTE = 1
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    reset_for_tests()
    statuses = {anon_client.get(f"/v1/retailer?key={_random_key()}").status_code for _ in range(5)}
    assert statuses == {401}
