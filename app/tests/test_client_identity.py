"""The client address a request is counted as, and its keyed hash."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from app.client_identity import (
    MEMO_FORWARDED_CHARS,
    UNKNOWN_CLIENT,
    client_address,
    client_hash,
    client_network,
    request_client_hash,
)


def request_from(peer: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/v1/prices/SKU-1", **extra)


def test_by_default_the_socket_peer_is_the_client_whatever_x_forwarded_for_says() -> None:
    forged = [request_from("203.0.113.9", f"198.51.100.{n}") for n in range(50)]
    assert {client_address(request) for request in forged} == {"203.0.113.9"}


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_rightmost_forwarded_entry_is_the_client() -> None:
    request = request_from("10.0.0.5", "1.2.3.4, 198.51.100.7")  # 1.2.3.4 was forged by the client
    assert client_address(request) == "198.51.100.7"


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_behind_two_proxies_the_second_entry_from_the_right_is_the_client() -> None:
    request = request_from("10.0.0.5", "6.6.6.6, 198.51.100.7, 10.0.0.4")
    assert client_address(request) == "198.51.100.7"


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_a_request_that_skipped_a_proxy_is_counted_by_its_peer() -> None:
    assert client_address(request_from("203.0.113.9", "198.51.100.7")) == "203.0.113.9"
    assert client_address(request_from("203.0.113.9")) == "203.0.113.9"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_a_garbled_forwarded_entry_falls_back_to_the_peer() -> None:
    assert client_address(request_from("203.0.113.9", "not-an-address")) == "203.0.113.9"


def test_ipv6_clients_are_counted_per_64() -> None:
    one = client_network("2001:db8:1:2:aaaa::1")
    other_host_same_64 = client_network("2001:db8:1:2:ffff:ffff:ffff:ffff")
    next_64 = client_network("2001:db8:1:3::1")
    assert one == other_host_same_64 == "2001:db8:1:2::/64"
    assert next_64 != one


def test_an_ipv4_mapped_ipv6_address_is_its_ipv4_address() -> None:
    assert client_network("::ffff:198.51.100.7") == "198.51.100.7"


@pytest.mark.parametrize("junk", ["", "x", "1.2.3.4.5", "\x00"])
def test_junk_is_one_unknown_client(junk: str) -> None:
    assert client_network(junk) == UNKNOWN_CLIENT


def test_the_hash_is_stable_within_a_period_and_rotates_between_periods() -> None:
    day = 86400
    assert client_hash("198.51.100.7", now=10 * day + 5) == client_hash("198.51.100.7", now=10 * day + 80000)
    assert client_hash("198.51.100.7", now=10 * day) != client_hash("198.51.100.7", now=11 * day)
    assert client_hash("198.51.100.7", now=10 * day) != client_hash("198.51.100.8", now=10 * day)
    assert "198" not in client_hash("198.51.100.7")


def test_the_hash_depends_on_the_secret_key() -> None:
    before = client_hash("198.51.100.7", now=0)
    with override_settings(SECRET_KEY="another-secret-key-for-this-test-only-0123456789"):
        from app import client_identity

        client_identity._period_key.cache_clear()
        client_identity._hash.cache_clear()
        after = client_hash("198.51.100.7", now=0)
        client_identity._period_key.cache_clear()
        client_identity._hash.cache_clear()
    assert before != after


@pytest.mark.parametrize("trusted", [0, 1, 2])
def test_the_remembered_request_hash_is_the_hash_of_the_client_address(settings, trusted) -> None:
    settings.TRUSTED_PROXY_COUNT = trusted
    long_forged = ", ".join(f"10.0.{n // 256}.{n % 256}" for n in range(100))  # past MEMO_FORWARDED_CHARS
    assert len(long_forged) > MEMO_FORWARDED_CHARS
    for forwarded in ("", "198.51.100.7", "203.0.113.9, 198.51.100.7", "junk, 2001:db8:1:2::5", long_forged):
        request = request_from("192.0.2.10", forwarded)
        assert request_client_hash(request) == client_hash(client_address(request)), forwarded
    if trusted == 0:  # an untrusted header is not even part of what is remembered
        hashes = {request_client_hash(request_from("192.0.2.10", f"198.51.100.{n}")) for n in range(20)}
        assert hashes == {client_hash("192.0.2.10")}
