"""CPU by process group while a load test runs: where the machine's cores go, stage by stage.

    python bench/process_cpu.py record --out cpu.csv [--interval 2]     # until interrupted
    python bench/process_cpu.py stages --samples cpu.csv --steps REPORT_DIR/steps.csv > cpu.txt

``record`` samples /proc every ``--interval`` seconds and writes, per sample, the CPU of each
group in % of one core (200 = both cores of a 2-core machine busy). Groups are told apart by
command line: gunicorn (web), the Celery worker groups of the Procfile, the outbox relay, beat,
PostgreSQL, Redis, locust, and everything else. ``stages`` averages the samples that fall in
each stage's measured window of a ``loadtests`` report (``steps.csv``). Used for
``docs/capacity.md``; it reads no project code.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = (
    ("web", ("gunicorn",)),
    ("realtime", ("realtime@",)),
    ("bulk", ("bulk@",)),
    ("backups", ("backups@",)),
    ("beat", ("celery -A app beat", "celery beat")),
    ("relay", ("outbox_relay",)),
    ("postgres", ("postgres",)),
    ("redis", ("redis-server", "valkey")),
    ("locust", ("locust", "loadtests.run")),
)
COLUMNS = [name for name, _ in GROUPS] + ["other", "machine"]


def _group(cmdline: str) -> str:
    for name, needles in GROUPS:
        if any(needle in cmdline for needle in needles):
            return name
    return "other"


def _snapshot() -> tuple[dict[int, tuple[str, int]], int]:
    """Per process: (group, user+system ticks); and the machine's busy ticks."""
    processes: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        processes[int(entry.name)] = (_group(cmdline), int(fields[11]) + int(fields[12]))
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    busy = sum(int(value) for value in cpu) - int(cpu[3]) - int(cpu[4])  # all but idle and iowait
    return processes, busy


def record(out: Path, interval: float) -> None:
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time", *COLUMNS])
        before, busy_before = _snapshot()
        while True:
            time.sleep(interval)
            after, busy_after = _snapshot()
            totals: dict[str, float] = defaultdict(float)
            for pid, (group, ticks) in after.items():
                totals[group] += ticks - (before[pid][1] if pid in before else 0)  # a new process: since its start
            scale = 100.0 / TICKS / interval
            row = [round(totals[name] * scale, 1) for name in COLUMNS[:-1]]
            writer.writerow([datetime.now(UTC).isoformat(), *row, round((busy_after - busy_before) * scale, 1)])
            handle.flush()
            before, busy_before = after, busy_after


def stages(samples: Path, steps: Path) -> None:
    rows = list(csv.DictReader(samples.open()))
    print("# CPU by process group, % of ONE core, mean of the samples in each stage's measured window")
    print(f"{'stage':<10}{'pv/s':>8}" + "".join(f"{name:>10}" for name in COLUMNS))
    for stage in csv.DictReader(steps.open()):
        start = datetime.fromisoformat(stage["measured_from"])
        end = start + timedelta(seconds=float(stage["seconds"]))
        inside = [row for row in rows if start <= datetime.fromisoformat(row["time"]) <= end]
        if not inside:
            continue
        means = [sum(float(row[name]) for row in inside) / len(inside) for name in COLUMNS]
        print(f"{stage['stage']:<10}{float(stage['page_views_per_s']):>8.1f}" + "".join(f"{m:>10.1f}" for m in means))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--out", type=Path, required=True)
    rec.add_argument("--interval", type=float, default=2.0)
    sta = sub.add_parser("stages")
    sta.add_argument("--samples", type=Path, required=True)
    sta.add_argument("--steps", type=Path, required=True)
    options = parser.parse_args()
    if options.command == "record":
        try:
            record(options.out, options.interval)
        except KeyboardInterrupt:
            return 0
    else:
        stages(options.samples, options.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
