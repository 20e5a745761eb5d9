"""Who a request comes from: a client address the client cannot forge, and its keyed hash.

With ``TRUSTED_PROXY_COUNT = 0`` (the default) the client is the socket's peer
(``REMOTE_ADDR``): an ``X-Forwarded-For`` header is whatever the client chose to send and
is ignored. Behind ``n`` proxies of our own, each appends the address it saw to
``X-Forwarded-For``, so the ``n``-th entry from the right was written by the outermost
trusted proxy; everything left of it may be forged. A request with fewer entries did not
come through every proxy and is counted by its peer address.

IPv6 clients are counted per /64 (one subscriber's allocation: a single host can pick any
of 2^64 addresses in it), IPv4 per address; an IPv4-mapped IPv6 address is its IPv4 address.

Nothing keeps a raw address: limits and demand caps use :func:`client_hash`, a keyed
BLAKE2b digest whose key is derived from ``SECRET_KEY`` and the current rotation period
(``CLIENT_HASH_ROTATION_SECONDS``, a day by default), so hashes of one client cannot be
linked across periods, nor reversed by trying all 2^32 IPv4 addresses without the secret.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

UNKNOWN_CLIENT = "unknown"


@lru_cache(maxsize=65536)
def client_network(address: str) -> str:
    """The unit a client is counted as: an IPv4 address, or an IPv6 /64 as ``prefix/64``."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return UNKNOWN_CLIENT
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        network = ipaddress.IPv6Network((int(ip) >> 64 << 64, 64))
        return str(network)
    return str(ip)


def client_address(request: HttpRequest, trusted_proxies: int | None = None) -> str:
    """The client's address (its /64 for IPv6), as :func:`client_network` gives it."""
    meta = request.META
    count = settings.TRUSTED_PROXY_COUNT if trusted_proxies is None else trusted_proxies
    return _address(meta.get("HTTP_X_FORWARDED_FOR", ""), meta.get("REMOTE_ADDR", ""), count)


def _address(forwarded: str, peer: str, trusted_proxies: int) -> str:
    if trusted_proxies > 0:
        hops = [hop for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= trusted_proxies:
            network = client_network(hops[-trusted_proxies])
            if network != UNKNOWN_CLIENT:
                return network
    return client_network(peer)


@lru_cache(maxsize=8)
def _period_key(period: int) -> bytes:
    secret = settings.SECRET_KEY.encode()
    return hashlib.blake2b(f"client-hash:{period}".encode(), key=secret[:64], digest_size=32).digest()


@lru_cache(maxsize=65536)
def _hash(network: str, period: int) -> str:
    return hashlib.blake2b(network.encode(), key=_period_key(period), digest_size=12).hexdigest()


def client_hash(network: str, now: float | None = None) -> str:
    """A keyed, rotating digest of a client network (24 hex characters), safe to store."""
    moment = time.time() if now is None else now
    return _hash(network, int(moment // settings.CLIENT_HASH_ROTATION_SECONDS))


# What decides a request's hash, remembered: one lookup on the price path instead of parsing
# the forwarded header and hashing every time (the per-client limit's largest in-process cost,
# bench/rate_limit_cost.py). The header is part of the key only while it is trusted, and a
# long one (the client may prepend anything to it) is not kept.
MEMO_FORWARDED_CHARS = 256


@lru_cache(maxsize=16384)
def _request_hash(forwarded: str, peer: str, trusted_proxies: int, period: int) -> str:
    return _hash(_address(forwarded, peer, trusted_proxies), period)


def request_client_hash(request: HttpRequest) -> str:
    """The keyed hash of the request's client (:func:`client_address`), for limits and caps."""
    meta = request.META
    count = settings.TRUSTED_PROXY_COUNT
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "") if count > 0 else ""
    peer = meta.get("REMOTE_ADDR", "")
    period = int(time.time() // settings.CLIENT_HASH_ROTATION_SECONDS)
    if len(forwarded) > MEMO_FORWARDED_CHARS:
        return _hash(_address(forwarded, peer, count), period)
    return _request_hash(forwarded, peer, count, period)
