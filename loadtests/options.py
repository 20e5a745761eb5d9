"""Scenario options, read from ``LOADTEST_*`` environment variables.

``python -m loadtests.run`` turns its command-line flags into these variables, so
the locustfile also runs on its own (``locust -f loadtests/locustfile.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

SCENARIOS = ("step", "spike", "soak", "fixed")
MODES = ("batched", "per-product")
PREFIX = "LOADTEST_"


class OptionsError(ValueError):
    """An option has a value the scenarios cannot use."""


@dataclass(frozen=True)
class LoadOptions:
    """Everything a scenario can be told; defaults reproduce docs/capacity.md."""

    scenario: str = "step"
    mode: str = "batched"
    keys_file: Path = Path("var/loadtest-keys.json")
    report_dir: Path = Path("reports/latest")
    # Shoppers
    products_per_page: int = 12
    think_min_s: float = 2.0
    think_max_s: float = 6.0
    pages_per_session_min: int = 3
    pages_per_session_max: int = 12
    cart_share: float = 0.15
    purchase_share: float = 0.4
    zipf_exponent: float = 1.07
    parallel_calls: int = 6
    request_timeout_s: float = 10.0
    # Client address / visitor pairs (loadtests/identities.py): each session is the next one
    shopper_identities: int = 10_000
    # Retailer server: operations per second, all retailers together
    retailer_ops_per_s: float = 0.5
    # Step growth
    step_seconds: float = 60.0
    max_retailers: int = 5
    cohort: int = 50
    settle_s: float = 5.0
    # Spike
    spike_base_users: int = 50
    spike_factor: float = 5.0
    spike_base_s: float = 30.0
    spike_s: float = 30.0
    spike_recover_s: float = 30.0
    # Soak
    soak_users: int = 100
    soak_s: float = 1800.0
    soak_window_s: float = 300.0
    # Fixed rate
    rate: float = 50.0
    pace_per_user: float = 0.5
    rate_headroom: float = 0.1
    ramp_s: float = 10.0
    hold_s: float = 60.0
    # Background work observation
    metrics_token: str = ""
    metrics_poll_s: float = 5.0

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise OptionsError(f"scenario must be one of {', '.join(SCENARIOS)}, not {self.scenario!r}")
        if self.mode not in MODES:
            raise OptionsError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not 1 <= self.products_per_page <= 100:
            raise OptionsError("products_per_page must be 1..100 (the price API answers up to 100 SKUs)")
        if self.think_max_s < self.think_min_s or self.think_min_s < 0:
            raise OptionsError("think times must satisfy 0 <= think_min_s <= think_max_s")
        if self.step_seconds <= self.settle_s:
            raise OptionsError("step_seconds must exceed settle_s, or no step is ever measured")
        at_least_one = ("cohort", "max_retailers", "spike_base_users", "soak_users", "parallel_calls")
        for name in (*at_least_one, "shopper_identities"):
            if getattr(self, name) < 1:
                raise OptionsError(f"{name} must be at least 1")
        for name in ("rate", "pace_per_user", "retailer_ops_per_s", "hold_s", "soak_window_s"):
            if getattr(self, name) <= 0:
                raise OptionsError(f"{name} must be positive")
        if not 0 <= self.rate_headroom <= 1:
            raise OptionsError("rate_headroom must be 0..1 (0.1 runs 10 % more, slower-paced users)")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LoadOptions:
        """Options from ``LOADTEST_<FIELD>`` variables (upper case); absent ones keep their default."""
        source = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = source.get(PREFIX + field.name.upper())
            if raw is None or raw == "":
                continue
            kind = type(getattr(cls, field.name))
            try:
                values[field.name] = kind(raw)
            except ValueError as error:
                raise OptionsError(f"{PREFIX}{field.name.upper()}={raw!r}: {error}") from error
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these options."""
        return {PREFIX + field.name.upper(): str(getattr(self, field.name)) for field in fields(self)}
