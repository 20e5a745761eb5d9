"""Per-key fixed-window rate limits in Redis; fail open while Redis is away."""

from __future__ import annotations

import pytest

from app.errors import ApiError
from app.redis_client import reset_for_tests
from app.tenancy.authentication import key_resolve
from app.tenancy.ratelimit import WINDOW_SECONDS, rate_limit_check, rate_window


def test_requests_past_the_limit_get_429_with_retry_after(alice) -> None:
    alice.retailer.rate_limit_per_minute = 3
    alice.retailer.save()
    context = key_resolve(alice.secret_key)
    for _ in range(3):
        rate_limit_check(context)
    with pytest.raises(ApiError) as refused:
        rate_limit_check(context)
    assert refused.value.status == 429
    assert refused.value.error.code == "rate_limited"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= WINDOW_SECONDS


def test_each_key_has_its_own_counter(alice, bob) -> None:
    for tenant in (alice, bob):
        tenant.retailer.rate_limit_per_minute = 1
        tenant.retailer.save()
    rate_limit_check(key_resolve(alice.secret_key))
    rate_limit_check(key_resolve(bob.secret_key))
    with pytest.raises(ApiError):
        rate_limit_check(key_resolve(alice.secret_key))


def test_the_window_key_expires(alice) -> None:
    from app.redis_client import cache_redis

    context = key_resolve(alice.secret_key)
    rate_limit_check(context)
    ttl = cache_redis().ttl(rate_window(context).key)
    assert 0 < ttl <= WINDOW_SECONDS + 1


def test_a_window_key_left_without_a_ttl_gets_one_from_the_next_request(alice) -> None:
    from app.redis_client import cache_redis

    context = key_resolve(alice.secret_key)
    key = rate_window(context).key
    cache_redis().set(key, 5)  # as if the EXPIRE after the first INCR had been lost
    rate_limit_check(context)
    assert int(cache_redis().get(key)) == 6
    assert 0 < cache_redis().ttl(key) <= WINDOW_SECONDS + 1


def test_limit_fails_open_when_redis_is_unreachable(alice, settings, caplog) -> None:
    alice.retailer.rate_limit_per_minute = 1
    alice.retailer.save()
    context = key_resolve(alice.secret_key)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    reset_for_tests()
    for _ in range(5):
        rate_limit_check(context)
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
