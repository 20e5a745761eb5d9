"""Backup benchmark: our enumeration, first backup and unchanged re-run against a raw walk and restic.

    python bench/backups_bench.py [--files 10000] [--seed 7] [--repeats 3] [--in-process]
                                  [--rss-baseline SMALLER_RUN.json] [--no-targets] [--json-out FILE]

Generates a seeded tree (90 % small files of 0-4 KiB, 9.9 % of 4-32 KiB, 0.1 % of 1-4 MiB, in
directories up to 4 deep: ~6.3 KB a file, ~5.9 GiB per million files), checks free space first
(the tree, our repository and restic's), and measures on a warm page cache:

  (a) a raw ``os.scandir`` + ``lstat`` walk (baseline)
  (b) our enumeration alone (the scan slices), in this process: one click queues the scan and
      the copy lanes on the same ``backups`` queue, so workers cannot run the scan alone; here the
      services run in a loop over the outbox rows they queue (no broker or relay time counted)
  (c) our first backup (scan + copy + manifest)
  (d) our unchanged re-run
  (e) restic ``backup`` of the same tree into a local repository, first and second run
      (skipped, with a message, when ``restic`` is not installed)

(c) and (d) run on real workers as production does (unless ``--in-process``): the bench starts
``manage.py outbox_relay`` and ``celery -A app worker -Q backups -c 2 --prefetch-multiplier=1 -O
fair`` (``worker_max_memory_per_child`` off; max-tasks-per-child is off by default) on its own
database and Redis, clicks through ``backups.services.backup_start`` (as ``POST /v1/backups``
does) and waits for ``done``. After the workers stop, one more re-run in this process splits its
time by task (``rerun_phases_s``: scan slices, copy lanes, finalize, the loop's outbox reads).

(a) and (b) run ``--repeats`` times alternately before the first backup, (d) as many times after
it (each after a raw walk), so each ratio compares runs made side by side on a shared machine; the
figures are medians and every run is in ``runs``. A sampler thread (``bench/process_rss.py``)
reads every 0.2 s the RSS of the worker's main process, each pool child, the relay, this process,
the database's PostgreSQL backends and restic; ``peak_rss_mb`` holds the peaks by phase and role.
Targets: b/a >= 0.6; c >= 1.0 x restic's first run; d <= 1.5 x b and <= restic's second run; 0
new chunks on every re-run; each worker process under 256 MB and, given the JSON of a smaller run
(``--rss-baseline``), within 10 % of its peak there. A miss exits 1 unless ``--no-targets``.
Needs PostgreSQL and Redis (``DATABASE_URL``, ``REDIS_URL``, ``CELERY_BROKER_URL``) with
migrations applied; trees and repositories are deleted after the run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.process_rss import Roles, RssSampler, database_backends  # noqa: E402

BYTES_PER_FILE = 6_300  # the mean of tree_make's size mix
WORKER_ROLES = ("worker_main", "worker_child")
WORKER_PHASES = ("first_backup", "rerun")
WORKER_RSS_LIMIT_MB = 256
WORKER_RSS_GROWTH = 1.10
BACKUP_DIRS = ("BACKUP_SOURCE_ROOT", "BACKUP_REPOSITORY_ROOT", "BACKUP_RESTORE_ROOT", "BACKUP_DOWNLOAD_SLOTS_DIR")


def tree_make(root: Path, files: int, seed: int) -> int:
    """Write the seeded tree; returns its bytes. Each directory is made once (the file
    creations, ~1 ms each on this machine's disk, are most of its time)."""
    rng = random.Random(seed)
    total, made = 0, set()
    for n in range(files):
        roll = rng.random()
        size = rng.randint(0, 4 << 10) if roll < 0.9 else rng.randint(4 << 10, 32 << 10)
        if roll >= 0.999:
            size = rng.randint(1 << 20, 4 << 20)
        depth = rng.randint(0, 4)
        parent = os.path.join(root, *(f"d{rng.randint(0, 30)}" for _ in range(depth)))
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        handle = os.open(os.path.join(parent, f"f{n}.bin"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(handle, rng.randbytes(size))
        finally:
            os.close(handle)
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


def timed(step: Callable[[], Any]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def backup_in_process(retailer_id: int, phases: dict[str, float]) -> None:
    from backups.services import backup_start

    phases.clear()
    started = time.perf_counter()
    backup_start(retailer_id=retailer_id)
    phases["start"] = time.perf_counter() - started
    drain(phases=phases)


def backup_on_workers(retailer_id: int) -> None:
    """Click (as ``POST /v1/backups`` does) and wait until the workers end the backup."""
    from backups.models import Backup
    from backups.services import backup_start
    from workers.testing import wait_until

    backup, created = backup_start(retailer_id=retailer_id)
    if not created:
        raise RuntimeError(f"backup {backup.pk} was still running")
    state = Backup.objects.filter(pk=backup.pk).values_list("state", flat=True)
    wait_until(lambda: state.get() not in Backup.RUNNING, timeout=6 * 3600, interval=0.05)


# The Procfile's worker_backups runs with glibc's malloc arenas capped at 2: the copy lane's reader
# and pack-writer threads each got an arena of their own, whose freed memory stayed in the
# process (100 k files: pool children 222 MB against 189 MB capped).
BACKUPS_MALLOC_ARENA_MAX = "2"


@contextmanager
def backup_workers(env: dict[str, str], roles: Roles) -> Iterator[None]:
    """The relay and a ``backups`` worker as production runs them, sampled while they run;
    started side by side (each takes seconds to import the project), killed at the end (the
    backups are done by then: nothing is in flight)."""
    from workers.testing import ManagedProcess, start_celery_worker, start_outbox_relay

    started: list[ManagedProcess] = []
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            relay_starting = pool.submit(start_outbox_relay, extra_env=env)
            try:
                options = ["--prefetch-multiplier=1", "-O", "fair"]
                worker_env = {**env, "MALLOC_ARENA_MAX": BACKUPS_MALLOC_ARENA_MAX}  # as the Procfile runs it
                started.append(worker := start_celery_worker(["backups"], 2, extra_env=worker_env, extra_args=options))
            finally:
                started.append(relay := relay_starting.result())
        roles.update(worker_main=lambda: [worker.pid], worker_child=worker.child_pids, relay=lambda: [relay.pid])
        yield
    finally:
        for role in ("worker_main", "worker_child", "relay"):
            roles.pop(role, None)
        for process in started:
            process.stop(graceful=False)
            process.log_path.unlink(missing_ok=True)


def restic_runs(source: Path, work: Path, sampler: RssSampler) -> dict[str, float] | str:
    binary = shutil.which("restic")
    if binary is None:
        return "restic is not installed (apt-get install restic): its runs are skipped"
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(work / "restic")}
    command = [binary, "--cache-dir", str(work / "restic-cache")]
    subprocess.run([*command, "init"], env=env, check=True, capture_output=True)
    figures = {}
    for run in ("first", "second"):
        sampler.phase_start(f"restic_{run}")
        started = time.perf_counter()
        restic = subprocess.Popen([*command, "backup", str(source)], env=env, stdout=subprocess.DEVNULL)
        sampler.roles["restic"] = functools.partial(list, [restic.pid])
        sampler.sample()
        if restic.wait() != 0:
            raise RuntimeError(f"restic backup exited with {restic.returncode}")
        figures[f"{run}_s"] = time.perf_counter() - started
        del sampler.roles["restic"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="runs of (a), (b) and (d) each")
    parser.add_argument("--in-process", action="store_true", help="(c) and (d) in this process, no workers")
    parser.add_argument("--rss-baseline", help="the --json-out of a smaller run: worker RSS within 10 % of it")
    parser.add_argument("--no-targets", action="store_true")
    parser.add_argument("--json-out")
    options = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    import django

    django.setup()
    from django.db import connection

    work = Path(tempfile.mkdtemp(prefix="sf-backups-bench-"))
    need = options.files * BYTES_PER_FILE * 3 * 6 // 5  # tree, our repository, restic's; 20 % spare
    if shutil.disk_usage(work).free < need:
        print(f"not enough free space in {work}: need {need >> 20} MiB", file=sys.stderr)
        return 2
    database = connection.settings_dict["NAME"]
    sampler = RssSampler({"bench": lambda: [os.getpid()], "postgres": lambda: database_backends(database)})
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        sampler.start()
        cleanup.callback(sampler.stop)
        try:
            report = measure(options, work, sampler, cleanup)
        except KeyboardInterrupt:  # a long run stopped by hand still says what memory it saw
            print(json.dumps({"interrupted": True, "peak_rss_mb": sampler.peaks()}, indent=2))
            raise
    report["peak_rss_mb"] = sampler.peaks()
    report["worker_peak_rss_mb"] = worker_peaks(report["peak_rss_mb"])
    if options.rss_baseline:
        baseline = json.loads(Path(options.rss_baseline).read_text())
        report["worker_rss_vs_baseline"] = {
            "baseline_files": baseline["files"],
            **{
                role: peak / baseline["worker_peak_rss_mb"][role] for role, peak in report["worker_peak_rss_mb"].items()
            },
        }
    report["misses"] = misses = _misses(report)
    print(json.dumps(report, indent=2))
    print(rss_table(report["peak_rss_mb"]))
    if options.json_out:
        Path(options.json_out).write_text(json.dumps(report))
    return 1 if misses and not options.no_targets else 0


def measure(options: argparse.Namespace, work: Path, sampler: RssSampler, cleanup: ExitStack) -> dict[str, Any]:
    from django.conf import settings

    from app.tenancy.services import retailer_create
    from backups.models import Backup
    from backups.repository import storage_reset
    from backups.services import backup_start

    running = list(Backup.objects.filter(state__in=Backup.RUNNING).values_list("pk", flat=True))
    if running:  # their queued work would run on this run's workers (a stopped run leaves its rows)
        raise SystemExit(f"backups {running} are still running in this database: the bench needs one of its own")
    load_at_start = os.getloadavg()
    retailer, _, _ = retailer_create(name=f"bench-{os.getpid()}", origins=[], actor="bench")
    dirs = {name: work / name.lower() for name in BACKUP_DIRS}
    for name, path in dirs.items():
        setattr(settings, name, path)
    storage_reset()
    source = dirs["BACKUP_SOURCE_ROOT"] / str(retailer.pk)
    source.mkdir(parents=True)
    started = time.perf_counter()
    size = tree_make(source, options.files, options.seed)
    generation = time.perf_counter() - started
    raw_walk(source)  # warm the page cache
    runs: dict[str, list[float]] = {"raw_walk_s": [], "enumeration_s": [], "rerun_s": [], "rerun_raw_walk_s": []}
    found = [0]

    def raw_once(key: str) -> None:
        sampler.phase_start("raw_walk")
        runs[key].append(timed(lambda: found.__setitem__(0, raw_walk(source))))

    def enumerate_only() -> None:
        backup, _ = backup_start(retailer_id=retailer.pk)
        drain(only=("backups.scan_slice",))
        Backup.objects.filter(pk=backup.pk).update(state="cancelled")
        drain()  # the queued lanes find it cancelled

    for _ in range(options.repeats):
        raw_once("raw_walk_s")
        sampler.phase_start("enumeration")
        runs["enumeration_s"].append(timed(enumerate_only))
    phases: dict[str, float] = {}
    run_backup = lambda: backup_in_process(retailer.pk, phases)  # noqa: E731
    workers = cleanup.enter_context(ExitStack())
    if not options.in_process:
        env = {name: str(path) for name, path in dirs.items()}
        env["CELERY_WORKER_MAX_MEMORY_PER_CHILD_KB"] = "0"  # off: a child is never replaced
        sampler.phase_start("workers_idle")
        workers.enter_context(backup_workers(env, sampler.roles))
        run_backup = lambda: backup_on_workers(retailer.pk)  # noqa: E731
    sampler.phase_start("first_backup")
    first = timed(run_backup)
    reruns = []
    for _ in range(options.repeats):
        raw_once("rerun_raw_walk_s")
        sampler.phase_start("rerun")
        runs["rerun_s"].append(timed(run_backup))
        last = Backup.objects.filter(retailer=retailer).order_by("-id").first()
        if last is None or last.state != "done":
            raise RuntimeError(f"the re-run did not finish: {last and last.error_message}")
        reruns.append(last)
    if not options.in_process:
        workers.close()
        sampler.phase_start("rerun_in_process")
        runs["rerun_in_process_s"] = [timed(lambda: backup_in_process(retailer.pk, phases))]
    restic = restic_runs(source, work, sampler)
    raw, enumeration, rerun = (statistics.median(runs[key]) for key in ("raw_walk_s", "enumeration_s", "rerun_s"))
    return {
        "mode": "in_process" if options.in_process else "workers",
        "files": found[0],
        "files_generated": options.files,
        "bytes": size,
        "tree_generation_s": generation,
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
        "restic": restic,
        "load_average": {"start": load_at_start, "end": os.getloadavg()},
    }


def worker_peaks(peaks: dict[str, dict[str, dict[str, Any]]]) -> dict[str, float]:
    """The peak RSS of the largest worker main and pool process over the backups on workers."""
    found: dict[str, float] = {}
    for phase in WORKER_PHASES:
        for role in WORKER_ROLES:
            if role in peaks.get(phase, {}):
                found[role] = max(found.get(role, 0.0), peaks[phase][role]["max_mb"])
    return found


def rss_table(peaks: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Peak RSS by phase and role: the largest process (its private part), and the sum when
    the role has several processes."""
    roles = sorted({role for by_role in peaks.values() for role in by_role})
    lines = [f"{'peak RSS MB: max (anon) [sum]':<34}" + "".join(f"{role:>22}" for role in roles)]
    for phase, by_role in peaks.items():
        cells = []
        for role in roles:
            peak = by_role.get(role)
            cell = "" if peak is None else f"{peak['max_mb']:.0f} ({peak['max_anon_mb']:.0f})"
            if peak is not None and peak["processes"] > 1:
                cell += f" [{peak['sum_mb']:.0f}]"
            cells.append(f"{cell:>22}")
        lines.append(f"{phase:<34}" + "".join(cells))
    return "\n".join(lines)


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
    for role, peak in report["worker_peak_rss_mb"].items():
        if peak >= WORKER_RSS_LIMIT_MB:
            misses.append(f"{role} peak RSS {peak:.0f} MB >= {WORKER_RSS_LIMIT_MB} MB")
        ratio = report.get("worker_rss_vs_baseline", {}).get(role)
        if ratio is not None and ratio > WORKER_RSS_GROWTH:
            misses.append(f"{role} peak RSS {ratio:.2f} x that of the smaller run")
    return misses


if __name__ == "__main__":
    sys.exit(main())
