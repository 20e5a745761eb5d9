"""Who a simulated shopper is: a client address and a visitor id, one pair per session.

The web limits publishable-key traffic per client address (``RATE_LIMIT_PER_CLIENT_PER_MINUTE``),
so a load test sending everything from the load generator's one address would measure one
client, and soon only 429s. Run the web with ``TRUSTED_PROXY_COUNT=1``: every shopper request
carries its shopper's address in ``X-Forwarded-For``, as our proxy would add it. Each session
takes the next pair of a pool (``shopper_identities``, 10,000 by default), so a run simulates
that many shoppers however few users are running at once.

``bench/loadgen.py`` sends its shoppers with the same addresses (stdlib only here, so both the
HTTP-only load tests and the benchmarks import it).
"""

from __future__ import annotations

import ipaddress
import itertools
import random
import uuid
from dataclasses import dataclass

BENCH_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")  # RFC 2544: set aside for benchmarks
DOCUMENTATION_V6 = ipaddress.IPv6Address("2001:db8::")  # RFC 3849


def shopper_address(number: int) -> str:
    """Shopper ``number``'s client address: every fourth one IPv6, in a /64 of its own (the web
    counts IPv6 clients per /64), the others IPv4; distinct for the first 131,072 shoppers."""
    if number % 4 == 3:
        return str(DOCUMENTATION_V6 + (number << 64))
    return str(BENCH_NETWORK[number % BENCH_NETWORK.num_addresses])


@dataclass(frozen=True)
class Identity:
    address: str
    visitor: str


class IdentityPool:
    """``size`` distinct (address, visitor) pairs handed out in turn, from a random place in the
    pool: two runs (or two locust processes) in one minute do not send as the same shoppers
    first. The visitors differ per run."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._namespace = uuid.uuid4()
        self._numbers = itertools.count(random.randrange(size))

    def identity(self, number: int) -> Identity:
        number %= self.size
        return Identity(shopper_address(number), uuid.uuid5(self._namespace, str(number)).hex)

    def next(self) -> Identity:
        return self.identity(next(self._numbers))
