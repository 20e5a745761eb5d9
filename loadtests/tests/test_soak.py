"""A soak fails when its last window is much slower than its first, or its ingest backlog rises window after window."""

from __future__ import annotations

import pytest

from loadtests.slo import slo_load
from loadtests.soak import soak_checks


def window(minute: int, price_p99: float, beacon_p99: float, backlog: float | str) -> dict[str, str]:
    """One row of a soak's steps.csv, as the verdict reads it (strings)."""
    row = {
        "stage": f"soak 0:{minute:02d}:00-0:{minute + 5:02d}:00",
        "price_requests": 3000,
        "price_p99_ms": price_p99,
        "beacon_requests": 3000,
        "beacon_p99_ms": beacon_p99,
        "ingest_depth_mean": backlog,
    }
    return {key: str(value) for key, value in row.items()}


def broken(checks) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for check in checks:
        if not check.passed:
            names.setdefault(check.name, []).append(check.subject)
    return names


def test_a_steady_soak_passes():
    windows = [window(5 * n, 18 + n % 2, 30, backlog=[1.5, 0.4, 2.0, 0.8][n]) for n in range(4)]

    checks = soak_checks(slo_load(), windows)

    assert broken(checks) == {}
    assert {check.name for check in checks} == {"soak.max_p99_growth", "soak.max_backlog_growth"}


def test_p99_creeping_past_the_growth_factor_fails_naming_the_group():
    windows = [window(0, 20, 30, 0), window(5, 31, 33, 0), window(10, 45, 35, 0)]

    checks = soak_checks(slo_load(), windows)

    assert broken(checks) == {"soak.max_p99_growth": ["price"]}
    (price,) = [check for check in checks if check.subject == "price"]
    assert (price.measured, price.limit) == (2.25, 2.0)
    assert price.note == "p99 20 ms in soak 0:00:00-0:05:00, 45 ms in soak 0:10:00-0:15:00"


def test_a_fast_first_window_is_compared_from_the_floor_not_from_noise():
    windows = [window(0, 2, 30, 0), window(5, 6, 30, 0), window(10, 9, 30, 0)]

    assert broken(soak_checks(slo_load(), windows)) == {}
    assert broken(soak_checks(slo_load(overrides=["soak.p99_floor_ms=0"]), windows)) == {
        "soak.max_p99_growth": ["price"]
    }


def test_a_backlog_rising_in_every_window_fails():
    windows = [window(5 * n, 20, 30, backlog) for n, backlog in enumerate([2, 9, 17, 40])]

    (check,) = [check for check in soak_checks(slo_load(), windows) if check.name == "soak.max_backlog_growth"]

    assert (check.passed, check.measured, check.limit) == (False, 38, 20)
    assert check.note == "mean backlog per window 2, 9, 17, 40: rose in every window"


@pytest.mark.parametrize(
    ("backlogs", "why"),
    [
        ([2, 9, 5, 40], "one window fell: bursty, not a trend"),
        ([0.1, 0.2, 0.3, 0.4], "rising, but by less than the limit"),
        ([30, 31], "two windows cannot show a trend"),
    ],
)
def test_a_backlog_that_does_not_keep_rising_past_the_limit_passes(backlogs, why):
    windows = [window(5 * n, 20, 30, backlog) for n, backlog in enumerate(backlogs)]

    assert broken(soak_checks(slo_load(), windows)) == {}, why


def test_a_soak_of_one_window_cannot_be_judged():
    assert broken(soak_checks(slo_load(), [window(0, 20, 30, 0)])) == {"soak.windows": ["soak"]}
