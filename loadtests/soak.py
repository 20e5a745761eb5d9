"""The soak verdict: the service must not degrade over time, judged window against window.

The service exports no per-process memory over HTTP (its ``/metrics`` registry
holds queue, outbox and task figures, no process collector), so a soak cannot
watch RSS grow. It judges what a leak or a falling-behind pipeline does instead,
from the per-window rows of ``steps.csv``:

- ``soak.max_p99_growth``: per group in ``soak.groups``, the last window's p99
  over the first window's (a first window faster than ``p99_floor_ms`` counts as
  that fast, so 2 ms becoming 5 ms is not mistaken for a leak);
- ``soak.max_backlog_growth``: the mean ingest backlog of each window (sampled
  from ``/metrics``); it fails when the backlog rose in every window, over at least
  three windows, and ended more than the limit above where it started.
"""

from __future__ import annotations

import itertools
from typing import Any

from loadtests.slo import Check

MIN_BACKLOG_WINDOWS = 3


def soak_checks(config: dict[str, Any], windows: list[dict[str, str]]) -> list[Check]:
    """Compare the soak's first window with its last (and every window's backlog with the one before)."""
    rules = config.get("soak", {})
    if len(windows) < 2:
        return [Check("soak.windows", "soak", len(windows), 2, False, "a soak needs two windows: raise --soak-s")]
    return [*_latency_growth(rules, windows[0], windows[-1]), _backlog_growth(rules, windows)]


def _latency_growth(rules: dict[str, Any], first: dict[str, str], last: dict[str, str]) -> list[Check]:
    checks = []
    limit, floor = float(rules["max_p99_growth"]), float(rules.get("p99_floor_ms", 0))
    for group in rules.get("groups", []):
        if not int(first.get(f"{group}_requests") or 0) or not int(last.get(f"{group}_requests") or 0):
            continue
        before, after = float(first[f"{group}_p99_ms"]), float(last[f"{group}_p99_ms"])
        growth = round(after / max(before, floor, 0.1), 2)
        note = f"p99 {before:g} ms in {first['stage']}, {after:g} ms in {last['stage']}"
        checks.append(Check("soak.max_p99_growth", group, growth, limit, growth <= limit, note))
    return checks


def _backlog_growth(rules: dict[str, Any], windows: list[dict[str, str]]) -> Check:
    limit = float(rules["max_backlog_growth"])
    means = [
        float(window["ingest_depth_mean"]) for window in windows if window.get("ingest_depth_mean") not in (None, "")
    ]
    if len(means) < MIN_BACKLOG_WINDOWS:
        note = f"backlog sampled in {len(means)} windows: {MIN_BACKLOG_WINDOWS} are needed to see a trend"
        return Check("soak.max_backlog_growth", "ingest", None, limit, True, note)
    growth = round(means[-1] - means[0], 1)
    rising = all(later > earlier for earlier, later in itertools.pairwise(means))
    trend = "rose in every window" if rising else "did not rise in every window"
    note = f"mean backlog per window {', '.join(f'{mean:g}' for mean in means)}: {trend}"
    return Check("soak.max_backlog_growth", "ingest", growth, limit, not (rising and growth > limit), note)
