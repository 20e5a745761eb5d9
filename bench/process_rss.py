"""Peak resident memory by process role, sampled from /proc while a benchmark runs.

A :class:`RssSampler` thread reads ``VmRSS`` and ``RssAnon`` from ``/proc/<pid>/status`` of
every process its ``roles`` name, every ``interval`` seconds (0.2 s by default), and keeps,
per phase (:attr:`RssSampler.phase`) and role, each process's peak, the peak of the largest
process and the peak of the role's sum. Roles are asked for their pids at each sample, so pool
children that are replaced, or PostgreSQL backends that come and go, are all counted.
``RssAnon`` is the process's private memory: a PostgreSQL backend's ``VmRSS`` also counts the
shared buffers it touched, which every backend shares.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Roles = dict[str, Callable[[], list[int]]]


def process_memory_kb(pid: int) -> tuple[int, int] | None:
    """``(VmRSS, RssAnon)`` of ``pid`` in KiB, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if line.startswith(("VmRSS:", "RssAnon:")))
    if "VmRSS" not in fields:  # a zombie has no memory left
        return None
    return int(fields["VmRSS"].split()[0]), int(fields.get("RssAnon", "0 kB").split()[0])


def database_backends(database: str) -> list[int]:
    """PIDs of the PostgreSQL backends connected to ``database``, told by their process title
    (``postgres: [<cluster name>:] <user> <database> <client> <state>``), not the server's
    other processes or other databases' backends."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")[0].split()
        except OSError:
            continue
        if words[:1] != [b"postgres:"]:
            continue
        words = words[2:] if len(words) > 1 and words[1].endswith(b":") else words[1:]
        if len(words) > 1 and words[1] == database.encode():
            found.append(int(entry.name))
    return found


class RssSampler(threading.Thread):
    """Samples the processes of ``roles`` until :meth:`stop`; :meth:`peaks` reports them."""

    def __init__(self, roles: Roles, interval: float = 0.2) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.roles = roles
        self.interval = interval
        self.phase = "setup"
        self.samples = 0
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        # (phase, role) -> {"pids": {pid: (rss, anon)}, "sum": (rss, anon)}, in KiB
        self._peaks: dict[tuple[str, str], dict[str, Any]] = {}

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.sample()

    def phase_start(self, phase: str) -> None:
        """Count what follows in ``phase``, from a first reading now (a phase shorter than
        the interval is read at least once)."""
        self.phase = phase
        self.sample()

    def sample(self) -> None:
        """One reading of every role's processes."""
        with self._lock:
            self.samples += 1
            for role, pids_of in list(self.roles.items()):  # the bench adds and drops roles
                readings = [(pid, memory) for pid in pids_of() if (memory := process_memory_kb(pid))]
                if not readings:
                    continue
                peak = self._peaks.setdefault((self.phase, role), {"pids": {}, "sum": (0, 0)})
                for pid, (rss, anon) in readings:
                    old = peak["pids"].get(pid, (0, 0))
                    peak["pids"][pid] = (max(old[0], rss), max(old[1], anon))
                total = (sum(memory[0] for _, memory in readings), sum(memory[1] for _, memory in readings))
                peak["sum"] = (max(peak["sum"][0], total[0]), max(peak["sum"][1], total[1]))

    def stop(self) -> None:
        self._stopped.set()
        self.join()

    def peaks(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per phase and role, in MB (10^6 bytes): ``max_mb`` / ``max_anon_mb`` (the largest
        process), ``sum_mb`` / ``sum_anon_mb`` (all of them at once), ``processes`` (how many
        were seen) and ``per_process_mb`` ({pid: peak})."""
        report: dict[str, dict[str, dict[str, Any]]] = {}
        with self._lock:
            for (phase, role), peak in self._peaks.items():
                pids = peak["pids"]
                report.setdefault(phase, {})[role] = {
                    "max_mb": _mb(max(rss for rss, _ in pids.values())),
                    "max_anon_mb": _mb(max(anon for _, anon in pids.values())),
                    "sum_mb": _mb(peak["sum"][0]),
                    "sum_anon_mb": _mb(peak["sum"][1]),
                    "processes": len(pids),
                    "per_process_mb": {str(pid): _mb(rss) for pid, (rss, _) in sorted(pids.items())},
                }
        return report


def _mb(kib: int) -> float:
    return round(kib * 1024 / 1e6, 1)
