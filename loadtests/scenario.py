"""The state one locust process shares between its shape and its users."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from loadtests.catalog import Retailer, ZipfSampler
from loadtests.identities import IdentityPool
from loadtests.options import LoadOptions
from loadtests.recorder import RunRecorder
from loadtests.shapes import Plan


@dataclass
class Scenario:
    options: LoadOptions
    retailers: list[Retailer]
    plan: Plan
    recorder: RunRecorder
    samplers: list[ZipfSampler] = field(init=False)
    identities: IdentityPool = field(init=False)
    _shopper_numbers: itertools.count[int] = field(init=False, default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.samplers = [ZipfSampler(list(r.skus), self.options.zipf_exponent) for r in self.retailers]
        self.identities = IdentityPool(self.options.shopper_identities)

    def next_shopper_retailer(self) -> int:
        """The retailer of the next shopper to start (shoppers start in spawn order)."""
        return self.plan.retailer_for(next(self._shopper_numbers))

    def active_retailers(self) -> list[Retailer]:
        """The retailers whose shoppers are running now (all of them outside step growth)."""
        current = self.recorder.current
        count = current.retailers if current is not None else 1
        return self.retailers[: max(1, min(count, len(self.retailers)))]
