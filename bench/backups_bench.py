"""Backup benchmark: our enumeration, first backup and unchanged re-run against a raw walk and restic.

    python bench/backups_bench.py [--files 10000] [--seed 7] [--repeats 3] [--no-targets] [--json-out FILE]

Generates a seeded tree (90 % small files of 0-16 KiB, 9 % of 16-512 KiB, 1 % of 1-8 MiB,
in directories up to 4 deep; about 6 GiB per million files at most), checks free space first,
and measures on a warm page cache, in this one process (the services the workers run, called
in a loop over the outbox rows they queue, so no broker or relay time is counted):

  (a) a raw ``os.scandir`` + ``lstat`` walk (baseline)
  (b) our enumeration alone (the scan slices)
  (c) our first backup (scan + copy + manifest)
  (d) our unchanged re-run
  (e) restic ``backup`` of the same tree into a local repository, first and second run
      (skipped, with a message, when ``restic`` is not installed)

(a) and (b) run ``--repeats`` times alternately before the first backup, (d) as many times
after it (each re-run after a raw walk), so each ratio compares runs made side by side on a
shared machine; the figures are medians, every run is in ``runs``, and ``rerun_phases_s`` splits
the last re-run by task (scan slices, copy lanes, finalize, the loop's own outbox reads).
Reports files/s, MB/s and this process's peak RSS. Targets: b/a >= 0.6; c >= 1.0 x restic's first
run; d <= 1.5 x b and <= restic's second run; 0 new chunks on every re-run. A miss exits 1 unless
``--no-targets``. Needs PostgreSQL and Redis (``DATABASE_URL``, ``REDIS_URL``,
``CELERY_BROKER_URL``) with migrations applied; trees and repositories are deleted after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tree_make(root: Path, files: int, seed: int) -> int:
    """Write the seeded tree; returns its bytes."""
    rng = random.Random(seed)
    total = 0
    for n in range(files):
        roll = rng.random()
        size = rng.randint(0, 16 << 10) if roll < 0.9 else rng.randint(16 << 10, 512 << 10)
        if roll >= 0.99:
            size = rng.randint(1 << 20, 8 << 20)
        depth = rng.randint(0, 4)
        parts = [f"d{rng.randint(0, 30)}" for _ in range(depth)]
        path = root.joinpath(*parts, f"f{n}.bin")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        total += size
    return total


def raw_walk(root: Path) -> int:
    count, stack = 0, [os.fsencode(root)]
    while stack:
        with os.scandir(stack.pop()) as listing:
            for entry in listing:
                entry.stat(follow_symlinks=False)
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return count


def drain(only: tuple[str, ...] | None = None, phases: dict[str, float] | None = None) -> None:
    from backups.copying import copy_lane_run
    from backups.finalizing import backup_finalize
    from backups.scanning import backup_scan_slice
    from workers.models import OutboxMessage

    runners: dict[str, Any] = {
        "backups.scan_slice": backup_scan_slice,
        "backups.copy_lane": copy_lane_run,
        "backups.finalize": backup_finalize,
    }
    names = list(only or runners)
    phases = {} if phases is None else phases
    while True:
        started = time.perf_counter()
        row = OutboxMessage.objects.filter(status="pending", task_name__in=names).order_by("id").first()
        if row is not None:
            OutboxMessage.objects.filter(pk=row.pk).update(status="done")
        phases["outbox"] = phases.get("outbox", 0.0) + time.perf_counter() - started
        if row is None:
            return
        started = time.perf_counter()
        runners[row.task_name](**row.kwargs)
        phases[row.task_name] = phases.get(row.task_name, 0.0) + time.perf_counter() - started


def timed(step: Any) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def restic_runs(source: Path, work: Path) -> dict[str, float] | str:
    binary = shutil.which("restic")
    if binary is None:
        return "restic is not installed (apt-get install restic): its runs are skipped"
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(work / "restic")}
    subprocess.run([binary, "init"], env=env, check=True, capture_output=True)
    first = timed(lambda: subprocess.run([binary, "backup", str(source)], env=env, check=True, capture_output=True))
    second = timed(lambda: subprocess.run([binary, "backup", str(source)], env=env, check=True, capture_output=True))
    return {"first_s": first, "second_s": second}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="runs of (a), (b) and (d) each")
    parser.add_argument("--no-targets", action="store_true")
    parser.add_argument("--json-out")
    options = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    import django

    django.setup()
    from django.conf import settings

    from app.tenancy.services import retailer_create
    from backups.models import Backup
    from backups.repository import storage_reset
    from backups.services import backup_start

    work = Path(tempfile.mkdtemp(prefix="sf-backups-bench-"))
    try:
        need = options.files * 6 * 1024 * 2  # ~6 KiB per file on average, tree and repository
        if shutil.disk_usage(work).free < need * 2:
            print(f"not enough free space in {work}: need {need * 2 >> 20} MiB", file=sys.stderr)
            return 2
        retailer, _, _ = retailer_create(name=f"bench-{os.getpid()}", origins=[], actor="bench")
        settings.BACKUP_SOURCE_ROOT, settings.BACKUP_REPOSITORY_ROOT = work / "src", work / "repo"
        settings.BACKUP_RESTORE_ROOT = work / "restore"
        storage_reset()
        source = work / "src" / str(retailer.pk)
        source.mkdir(parents=True)
        size = tree_make(source, options.files, options.seed)
        raw_walk(source)  # warm the page cache
        runs: dict[str, list[float]] = {"raw_walk_s": [], "enumeration_s": [], "rerun_s": [], "rerun_raw_walk_s": []}
        found = [0]

        def raw_once(key: str) -> None:
            runs[key].append(timed(lambda: found.__setitem__(0, raw_walk(source))))

        def enumerate_only() -> None:
            backup, _ = backup_start(retailer_id=retailer.pk)
            drain(only=("backups.scan_slice",))
            Backup.objects.filter(pk=backup.pk).update(state="cancelled")
            drain()  # the queued lanes find it cancelled

        for _ in range(options.repeats):
            raw_once("raw_walk_s")
            runs["enumeration_s"].append(timed(enumerate_only))
        phases: dict[str, float] = {}

        def backup_once() -> None:
            phases.clear()
            started = time.perf_counter()
            backup_start(retailer_id=retailer.pk)
            phases["start"] = time.perf_counter() - started
            drain(phases=phases)

        first = timed(backup_once)
        reruns = []
        for _ in range(options.repeats):
            raw_once("rerun_raw_walk_s")
            runs["rerun_s"].append(timed(backup_once))
            last = Backup.objects.filter(retailer=retailer).order_by("-id").first()
            if last is None or last.state != "done":
                raise RuntimeError(f"the re-run did not finish: {last and last.error_message}")
            reruns.append(last)
        restic = restic_runs(source, work)
        raw, enumeration, rerun = (statistics.median(runs[key]) for key in ("raw_walk_s", "enumeration_s", "rerun_s"))
        report: dict[str, Any] = {
            "files": found[0],
            "bytes": size,
            "raw_walk_files_per_s": found[0] / raw,
            "enumeration_files_per_s": found[0] / enumeration,
            "enumeration_vs_raw_walk": raw / enumeration,
            "first_backup_files_per_s": found[0] / first,
            "first_backup_mb_per_s": size / first / 1e6,
            "first_backup_s": first,
            "rerun_s": rerun,
            "enumeration_s": enumeration,
            "rerun_vs_enumeration": rerun / enumeration,
            "rerun_new_chunks": max(backup.chunks_new for backup in reruns),
            "rerun_bytes_read": max(backup.bytes_read for backup in reruns),
            "rerun_phases_s": phases,
            "runs": runs,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "restic": restic,
        }
        misses = _misses(report)
        report["misses"] = misses
        print(json.dumps(report, indent=2))
        if options.json_out:
            Path(options.json_out).write_text(json.dumps(report))
        return 1 if misses and not options.no_targets else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _misses(report: dict[str, Any]) -> list[str]:
    misses = []
    if report["enumeration_files_per_s"] < 0.6 * report["raw_walk_files_per_s"]:
        misses.append("enumeration < 0.6 x the raw walk")
    if report["rerun_s"] > 1.5 * report["enumeration_s"]:
        misses.append("unchanged re-run > 1.5 x enumeration")
    if report["rerun_new_chunks"] != 0:
        misses.append("an unchanged re-run stored new chunks")
    restic = report["restic"]
    if isinstance(restic, dict):
        if report["first_backup_s"] > restic["first_s"]:
            misses.append("first backup slower than restic's")
        if report["rerun_s"] > restic["second_s"]:
            misses.append("unchanged re-run slower than restic's second run")
    return misses


if __name__ == "__main__":
    sys.exit(main())
