"""Fixed-window rate limits in Redis, per key and per client of a publishable key; fail open
while Redis is away."""

from __future__ import annotations

import pytest
from django.http import HttpRequest
from django.test import RequestFactory

from app.errors import ApiError
from app.redis_client import cache_redis, reset_for_tests
from app.tenancy.authentication import AuthContext, key_resolve
from app.tenancy.ratelimit import WINDOW_SECONDS, rate_limit_check, rate_window


def from_peer(address: str = "192.0.2.1") -> HttpRequest:
    return RequestFactory().get("/v1/prices/SKU-1", REMOTE_ADDR=address)


def allowed(context: AuthContext, request: HttpRequest) -> bool:
    try:
        rate_limit_check(context, request)
    except ApiError as refused:
        status = refused.status
    else:
        return True
    assert status == 429
    return False


def test_requests_past_the_limit_get_429_with_retry_after(alice) -> None:
    alice.retailer.rate_limit_per_minute = 3
    alice.retailer.save()
    context = key_resolve(alice.secret_key)
    for _ in range(3):
        rate_limit_check(context, from_peer())
    with pytest.raises(ApiError) as refused:
        rate_limit_check(context, from_peer())
    assert refused.value.status == 429
    assert refused.value.error.code == "rate_limited"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= WINDOW_SECONDS


def test_each_key_has_its_own_counter(alice, bob) -> None:
    for tenant in (alice, bob):
        tenant.retailer.rate_limit_per_minute = 1
        tenant.retailer.save()
    rate_limit_check(key_resolve(alice.secret_key), from_peer())
    rate_limit_check(key_resolve(bob.secret_key), from_peer())
    with pytest.raises(ApiError):
        rate_limit_check(key_resolve(alice.secret_key), from_peer())


def test_the_window_key_expires(alice) -> None:
    context = key_resolve(alice.secret_key)
    rate_limit_check(context, from_peer())
    ttl = cache_redis().ttl(rate_window(context, from_peer()).key)
    assert 0 < ttl <= WINDOW_SECONDS + 1


def test_a_window_key_left_without_a_ttl_gets_one_from_the_next_request(alice) -> None:
    context = key_resolve(alice.secret_key)
    key = rate_window(context, from_peer()).key
    cache_redis().set(key, 5)  # as if the EXPIRE after the first INCR had been lost
    rate_limit_check(context, from_peer())
    assert int(cache_redis().get(key)) == 6
    assert 0 < cache_redis().ttl(key) <= WINDOW_SECONDS + 1


def test_limit_fails_open_when_redis_is_unreachable(alice, settings, caplog) -> None:
    alice.retailer.rate_limit_per_minute = 1
    alice.retailer.save()
    context = key_resolve(alice.secret_key)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    reset_for_tests()
    for _ in range(5):
        rate_limit_check(context, from_peer())
    assert "rate_limit_fail_open" in caplog.text


def test_api_answers_429_as_json(alice, settings) -> None:
    alice.retailer.rate_limit_per_minute = 1
    alice.retailer.save()
    client = alice.client()
    assert client.get("/v1/retailer").status_code == 200
    response = client.get("/v1/retailer")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) >= 1


@pytest.fixture
def client_limit(settings) -> int:
    settings.RATE_LIMIT_PER_CLIENT_PER_MINUTE = 3
    return 3


def test_a_client_past_its_limit_is_refused_while_another_client_of_the_key_is_not(alice, client_limit) -> None:
    context = key_resolve(alice.publishable_key)
    assert [allowed(context, from_peer("198.51.100.1")) for _ in range(5)] == [True] * 3 + [False] * 2
    with pytest.raises(ApiError) as refused:
        rate_limit_check(context, from_peer("198.51.100.1"))
    assert refused.value.error.code == "rate_limited"
    assert "one client" in str(refused.value)
    assert 1 <= int(refused.value.headers["Retry-After"]) <= WINDOW_SECONDS
    assert allowed(context, from_peer("198.51.100.2"))


def test_requests_refused_for_their_client_do_not_count_toward_the_key_ceiling(alice, client_limit) -> None:
    alice.retailer.rate_limit_per_minute = 6
    alice.retailer.save()
    context = key_resolve(alice.publishable_key)
    flood = [allowed(context, from_peer("198.51.100.66")) for _ in range(50)]
    assert flood.count(True) == client_limit
    others = [allowed(context, from_peer(f"203.0.113.{n}")) for n in (1, 1, 2)]
    assert others == [True, True, True]  # 3 + 3 = the ceiling of 6: the 47 refused did not count
    assert not allowed(context, from_peer("203.0.113.3"))  # the retailer-wide ceiling still holds


def test_ipv6_clients_are_counted_per_64(alice, client_limit) -> None:
    context = key_resolve(alice.publishable_key)
    one_subscriber = [f"2001:db8:1:2:{n:x}::1" for n in range(5)]
    assert [allowed(context, from_peer(address)) for address in one_subscriber] == [True] * 3 + [False] * 2
    assert allowed(context, from_peer("2001:db8:1:3::1"))  # the next /64 is another client


def test_secret_key_calls_have_the_per_key_limit_only(alice, client_limit) -> None:
    alice.retailer.rate_limit_per_minute = 10
    alice.retailer.save()
    context = key_resolve(alice.secret_key)
    assert [allowed(context, from_peer()) for _ in range(11)] == [True] * 10 + [False]


def test_a_client_limit_of_zero_switches_it_off(alice, settings) -> None:
    settings.RATE_LIMIT_PER_CLIENT_PER_MINUTE = 0
    alice.retailer.rate_limit_per_minute = 10
    alice.retailer.save()
    context = key_resolve(alice.publishable_key)
    assert rate_window(context, from_peer()).client_key is None
    assert [allowed(context, from_peer()) for _ in range(11)] == [True] * 10 + [False]


def test_the_client_counter_has_a_ttl_and_no_raw_address(alice, client_limit) -> None:
    context = key_resolve(alice.publishable_key)
    request = from_peer("198.51.100.23")
    rate_limit_check(context, request)
    window = rate_window(context, request)
    assert window.client_key is not None
    assert "198.51.100.23" not in window.client_key
    assert 0 < cache_redis().ttl(window.client_key) <= WINDOW_SECONDS + 1
    assert 0 < cache_redis().ttl(window.key) <= WINDOW_SECONDS + 1
