"""What one load run did, per stage: rates, latency percentiles, failures, CPU, queue depth.

Locust's own CSV covers the whole run per request name; this recorder splits the
run by shape stage (``steps.csv``) so step growth shows the rate at which each
objective broke, and it keeps the counts the end checks need (``run.json``):
events sent in batches answered 202, per retailer, and the run's time window.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GROUPS = ("page", "js", "price", "beacon", "retailer")
PAGE_GROUP = "page"
STEPS_FILE = "steps.csv"
RUN_FILE = "run.json"
# CPU is sampled once a second; the load generator is the limit when its CPU stays high this
# many samples in a row. A stage's mean would hide 30 s at 95 % inside a 60 s stage; a single
# sample would fail on a GC pause or a cohort spawning.
CPU_SUSTAINED_SAMPLES = 10


def group_of(name: str) -> str:
    """Request names are ``group:detail`` (``price:batch``) or just ``group`` (``beacon``)."""
    return name.split(":", 1)[0]


@dataclass(frozen=True)
class Stage:
    label: str
    shoppers: int
    spawn_rate: float
    measured: bool
    retailers: int
    target_rate: float | None = None


class Histogram:
    """Latencies in 0.1 ms buckets: exact enough for millisecond objectives, constant memory."""

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.requests = 0
        self.failures = 0

    def add(self, milliseconds: float, failed: bool) -> None:
        self.buckets[round(milliseconds * 10)] += 1
        self.requests += 1
        self.failures += failed

    def percentile(self, fraction: float) -> float:
        """The smallest latency at or below which ``fraction`` of the requests fell (0 if none)."""
        if not self.requests:
            return 0.0
        rank = fraction * self.requests
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return bucket / 10
        return max(self.buckets) / 10


@dataclass
class StageStats:
    label: str
    retailers: int
    shoppers: int
    target_rate: float | None
    window_start: float | None = None
    window_end: float | None = None
    measured_from: str = ""
    groups: dict[str, Histogram] = field(default_factory=lambda: {group: Histogram() for group in GROUPS})
    cpu: list[float] = field(default_factory=list)
    machine_cpu: list[float] = field(default_factory=list)
    queue_depth: list[int] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        if self.window_start is None or self.window_end is None:
            return 0.0
        return self.window_end - self.window_start

    def rate(self, count: int) -> float:
        return count / self.seconds if self.seconds > 0 else 0.0

    def row(self) -> dict[str, Any]:
        calls = sum(h.requests for group, h in self.groups.items() if group != PAGE_GROUP)
        row: dict[str, Any] = {
            "stage": self.label,
            "measured_from": self.measured_from,
            "retailers": self.retailers,
            "shoppers": self.shoppers,
            "seconds": round(self.seconds, 1),
            "target_page_views_per_s": self.target_rate if self.target_rate is not None else "",
            "page_views_per_s": round(self.rate(self.groups[PAGE_GROUP].requests), 2),
            "calls_per_s": round(self.rate(calls), 2),
            "locust_cpu_mean": round(sum(self.cpu) / len(self.cpu), 1) if self.cpu else "",
            "locust_cpu_max": round(max(self.cpu), 1) if self.cpu else "",
            "locust_cpu_sustained": round(sustained(self.cpu, CPU_SUSTAINED_SAMPLES), 1) if self.cpu else "",
            "machine_cpu_mean": round(sum(self.machine_cpu) / len(self.machine_cpu), 1) if self.machine_cpu else "",
            "ingest_depth_max": max(self.queue_depth) if self.queue_depth else "",
            "ingest_depth_mean": round(sum(self.queue_depth) / len(self.queue_depth), 1) if self.queue_depth else "",
        }
        for group, histogram in self.groups.items():
            row[f"{group}_requests"] = histogram.requests
            row[f"{group}_failures"] = histogram.failures
            row[f"{group}_p95_ms"] = histogram.percentile(0.95)
            row[f"{group}_p99_ms"] = histogram.percentile(0.99)
        return row


def sustained(samples: list[float], run: int) -> float:
    """The highest mean of ``run`` consecutive samples (of all of them, when there are fewer)."""
    if len(samples) <= run:
        return sum(samples) / len(samples)
    window = sum(samples[:run])
    best = window
    for leaving, entering in zip(samples, samples[run:], strict=False):
        window += entering - leaving
        best = max(best, window)
    return best / run


class RunRecorder:
    """Fed by the shape (stage changes), the request event and the samplers; written at test stop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None
        self.current: StageStats | None = None
        self.measuring = False
        self.stages: dict[str, StageStats] = {}
        self.events_sent: Counter[str] = Counter()
        self.batches_accepted = 0
        self.accepted_mismatches = 0

    def stage_enter(self, stage: Stage | None) -> None:
        """Called on every shape tick (about once a second) with the stage now running."""
        now = self.clock()
        if self.started_at is None:
            self.started_at = datetime.now(UTC)
        if self.current is not None and self.measuring:
            self.current.window_end = now
        if stage is None:
            self.current, self.measuring = None, False
            return
        stats = self.stages.get(stage.label)
        if stats is None:
            stats = StageStats(stage.label, stage.retailers, stage.shoppers, stage.target_rate)
            self.stages[stage.label] = stats
        self.current, self.measuring = stats, stage.measured
        if stage.measured and stats.window_start is None:
            stats.window_start = now
            stats.window_end = now
            stats.measured_from = datetime.now(UTC).isoformat(timespec="seconds")

    def request(self, name: str, milliseconds: float, failed: bool) -> None:
        if self.current is not None and self.measuring:
            group = group_of(name)
            if group in self.current.groups:
                self.current.groups[group].add(milliseconds, failed)

    def cpu_sample(self, locust_percent: float, machine_percent: float) -> None:
        if self.current is not None and self.measuring:
            self.current.cpu.append(locust_percent)
            self.current.machine_cpu.append(machine_percent)

    def queue_depth_sample(self, depth: int) -> None:
        if self.current is not None and self.measuring:
            self.current.queue_depth.append(depth)

    def events_accepted(self, retailer: str, sent: int, accepted: int | None) -> None:
        """A beacon batch was answered 202: ``sent`` events are now the service's to count."""
        self.events_sent[retailer] += sent
        self.batches_accepted += 1
        if accepted is not None and accepted != sent:
            self.accepted_mismatches += 1

    def finish(self) -> None:
        if self.current is not None and self.measuring:
            self.current.window_end = self.clock()
        self.current, self.measuring = None, False
        self.finished_at = datetime.now(UTC)

    def summary(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "events_sent": dict(self.events_sent),
            "batches_accepted": self.batches_accepted,
            "accepted_mismatches": self.accepted_mismatches,
            "stages": [stats.row() for stats in self.stages.values() if stats.seconds > 0],
        }

    def write(self, report_dir: Path, extra: dict[str, Any]) -> None:
        report_dir.mkdir(parents=True, exist_ok=True)
        summary = {**extra, **self.summary()}
        (report_dir / RUN_FILE).write_text(json.dumps(summary, indent=2))
        rows = summary["stages"]
        if rows:
            with (report_dir / STEPS_FILE).open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
