"""The load tests' shoppers: at least 10,000 distinct client address / visitor pairs by default."""

from __future__ import annotations

import ipaddress

from loadtests.identities import IdentityPool, shopper_address
from loadtests.options import LoadOptions


def client_of(address: str) -> str:
    """The unit the web counts a client as: an IPv4 address, an IPv6 /64."""
    ip = ipaddress.ip_address(address)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else address


def test_the_default_pool_holds_10000_distinct_clients_and_visitors():
    size = LoadOptions().shopper_identities
    pool = IdentityPool(size)
    identities = [pool.next() for _ in range(size)]

    assert size >= 10_000
    assert len({client_of(identity.address) for identity in identities}) == size
    assert len({identity.visitor for identity in identities}) == size
    assert {ipaddress.ip_address(identity.address).version for identity in identities} == {4, 6}


def test_the_pool_hands_out_its_pairs_in_turn_and_then_again():
    pool = IdentityPool(3)
    first = [pool.next() for _ in range(3)]

    assert [pool.next() for _ in range(3)] == first
    assert IdentityPool(3).next().visitor != first[0].visitor  # another run, other visitor ids


def test_addresses_are_from_the_ranges_set_aside_for_benchmarks_and_documentation():
    benchmark, documentation = ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("2001:db8::/32")
    addresses = [ipaddress.ip_address(shopper_address(number)) for number in range(0, 131_072, 7)]

    assert all(address in (benchmark if address.version == 4 else documentation) for address in addresses)
