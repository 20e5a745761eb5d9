"""The SLO verdict: thresholds from ``slo.toml``, applied to locust's CSV and to each stage.

Every check has a dotted name (``price.p99_ms``, ``drain.timeout_s``) that is
also the key to override it with ``--set``, so a failed run names exactly the
threshold it broke.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.recorder import group_of

DEFAULT_SLO_FILE = Path(__file__).with_name("slo.toml")
LATENCY_KEYS = {"p95_ms": "95%", "p99_ms": "99%"}


class SloConfigError(ValueError):
    """The SLO file or an override is malformed."""


@dataclass(frozen=True)
class Check:
    """One threshold applied to one subject (a request name, a stage, the queue…)."""

    name: str
    subject: str
    measured: float | None
    limit: float | None
    passed: bool
    note: str = ""

    def line(self) -> str:
        status = "ok    " if self.passed else "BROKEN"
        figures = ""
        if self.measured is not None and self.limit is not None:
            figures = f" measured {self.measured:g}, limit {self.limit:g}"
        note = f" ({self.note})" if self.note else ""
        return f"  {status} {self.name:<34} {self.subject:<26}{figures}{note}"


def slo_load(path: Path = DEFAULT_SLO_FILE, overrides: list[str] | None = None) -> dict[str, Any]:
    """The SLO table with ``group.key=value`` overrides applied (groups are looked up first)."""
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SloConfigError(f"cannot read SLO file {path}: {error}") from error
    for override in overrides or []:
        dotted, sep, raw = override.partition("=")
        section, dot, key = dotted.strip().partition(".")
        if not sep or not dot or not key:
            raise SloConfigError(f"--set {override!r}: write it as group.key=value, e.g. price.p99_ms=40")
        table = config.get("groups", {}).get(section, config.get(section))
        if not isinstance(table, dict):
            raise SloConfigError(f"--set {override!r}: no SLO section or group named {section!r}")
        table[key] = _value(raw.strip(), override)
    return config


def _value(raw: str, override: str) -> float | bool | str:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return float(raw)
    except ValueError:
        if raw.isidentifier():
            return raw
        raise SloConfigError(f"--set {override!r}: the value must be a number, true/false or a name") from None


def stats_rows_read(path: Path) -> list[dict[str, str]]:
    """The per-name rows of locust's ``*_stats.csv`` (the Aggregated row left out)."""
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("Name") != "Aggregated"]


def _threshold_checks(group: str, rules: dict[str, Any], subject: str, figures: dict[str, float]) -> list[Check]:
    checks = []
    for key in (*LATENCY_KEYS, "failure_ratio"):
        if key in rules and key in figures:
            limit = float(rules[key])
            measured = figures[key]
            checks.append(Check(f"{group}.{key}", subject, measured, limit, measured <= limit))
    return checks


def request_checks(config: dict[str, Any], rows: list[dict[str, str]]) -> list[Check]:
    """Latency and failure thresholds per request name, from locust's whole-run CSV."""
    checks: list[Check] = []
    groups: dict[str, dict[str, Any]] = config.get("groups", {})
    seen: set[str] = set()
    for row in rows:
        group = group_of(row["Name"])
        rules = groups.get(group)
        if rules is None:
            continue
        requests = int(row["Request Count"])
        if requests == 0:
            continue
        seen.add(group)
        figures = {
            key: float(row[column]) for key, column in LATENCY_KEYS.items() if row.get(column) not in ("", "N/A")
        }
        figures["failure_ratio"] = int(row["Failure Count"]) / requests
        checks += _threshold_checks(group, rules, row["Name"], figures)
    for group, rules in groups.items():
        if rules.get("required") and group not in seen:
            checks.append(Check(f"{group}.required", group, 0, None, False, "no requests of this group were made"))
    return checks


def stage_checks(config: dict[str, Any], stage: dict[str, str]) -> list[Check]:
    """The same thresholds applied to one stage of ``steps.csv`` (group-level, measured time only)."""
    checks: list[Check] = []
    for group, rules in config.get("groups", {}).items():
        requests = int(stage.get(f"{group}_requests") or 0)
        if not requests:
            continue
        figures = {key: float(stage[f"{group}_{key}"]) for key in LATENCY_KEYS}
        figures["failure_ratio"] = int(stage[f"{group}_failures"]) / requests
        checks += _threshold_checks(group, rules, stage["stage"], figures)
    checks += _cpu_checks(config, stage)
    backlog = stage.get("ingest_depth_max")
    if backlog not in (None, "") and "max_backlog" in config.get("drain", {}):
        limit = float(config["drain"]["max_backlog"])
        checks.append(Check("drain.max_backlog", stage["stage"], float(backlog), limit, float(backlog) <= limit))
    target = stage.get("target_page_views_per_s")
    if target not in (None, ""):
        ratio = float(stage["page_views_per_s"]) / float(target)
        limit = float(config["fixed_rate"]["min_achieved_ratio"])
        checks.append(
            Check(
                "fixed_rate.min_achieved_ratio",
                stage["stage"],
                round(ratio, 3),
                limit,
                ratio >= limit,
                f"{float(stage['page_views_per_s']):g} of {float(target):g} page views/s",
            )
        )
    return checks


def _cpu_checks(config: dict[str, Any], stage: dict[str, str]) -> list[Check]:
    """Locust's own CPU, held for 10 s (``locust_cpu_sustained``; the stage mean in older reports)."""
    cpu = stage.get("locust_cpu_sustained") or stage.get("locust_cpu_mean")
    if cpu in (None, ""):
        return []
    limit, measured = float(config["loadgen"]["max_cpu_percent"]), float(cpu)
    note = "locust's CPU, highest 10 s mean"
    if measured > limit:
        note += ": the load generator, not the service, was the limit"
    return [Check("loadgen.max_cpu_percent", stage["stage"], measured, limit, measured <= limit, note)]


def stages_read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))
