"""``python -m app.supervisor Procfile``: run every Procfile process, restart one that exits.

``./sf run`` used honcho, which stops the whole stack when any one process exits. The
rule here (:class:`RestartPolicy`):

* a process that exits after running at least ``min_uptime`` (10 s) is restarted, after
  a backoff of 1 s doubling with each restart in a row, capped at 30 s (a restart that
  then runs ``backoff_reset`` seconds, 60, starts the count again);
* a restarted process that exits again within ``min_uptime`` is a quick failure; it is
  restarted the same way, and three quick failures in a row stop the stack with a
  non-zero exit: it is not coming back by itself;
* a process that exits within ``min_uptime`` of its *first* start never came up (a taken
  port, a bad setting, a broker refused by ``BROKER_CONFIG_CHECK``): the stack stops at
  once, with that process's exit status.

Why our own: honcho restarts nothing, and supervisor (supervisord) on PyPI, the maintained
choice, retries a failed start too (``startretries``), so a taken port would cost its
retries instead of stopping at once, and it needs a config file, a daemon and an event
listener to stop the rest on a fatal process. This module keeps honcho's parts (Procfile
parsing, process wrapper, output printer and the process-group signals), so the output
reads as before: ``HH:MM:SS web.1 | …`` and ``system | web.1 started (pid=…)``.

A SIGINT or SIGTERM stops every process (SIGTERM to each process group, SIGKILL after
``KILL_WAIT_SECONDS``) and exits 130 or 143, as honcho does. For development only:
production runs each process under its platform's supervisor (README, "Background work").
"""

from __future__ import annotations

import argparse
import datetime
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from honcho.compat import ProcessManager
from honcho.environ import parse_procfile
from honcho.printer import Message, Printer
from honcho.process import Process

KILL_WAIT_SECONDS = 8.0
"""After SIGTERM, how long the processes get (a worker's soft shutdown, ``sf run`` sets 1 s,
and its pool's stop take 2-3 s on 2 cores) before SIGKILL."""
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
SYSTEM = "system"


@dataclass(frozen=True)
class RestartPolicy:
    min_uptime: float = 10.0
    quick_failures_limit: int = 3
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    backoff_reset: float = 60.0


@dataclass
class Verdict:
    restart_in: float | None  # seconds until the restart; None: stop the stack
    reason: str


@dataclass
class ProcessHistory:
    """One Procfile process's runs, as the policy needs them."""

    starts: int = 0
    quick_failures: int = 0
    restarts_in_a_row: int = 0

    def exited(self, ran_seconds: float, policy: RestartPolicy) -> Verdict:
        """What to do now that the process exited after ``ran_seconds``."""
        if ran_seconds < policy.min_uptime:
            if self.starts == 1:
                return Verdict(None, f"exited within {policy.min_uptime:g} s of its first start")
            self.quick_failures += 1
            if self.quick_failures >= policy.quick_failures_limit:
                return Verdict(None, f"{self.quick_failures} quick failures in a row")
            reason = f"quick failure {self.quick_failures} of {policy.quick_failures_limit}"
        else:
            reason = f"ran {ran_seconds:.1f} s"
            self.quick_failures = 0
            if ran_seconds >= policy.backoff_reset:
                self.restarts_in_a_row = 0
        delay = min(policy.backoff_cap, policy.backoff_base * 2**self.restarts_in_a_row)
        self.restarts_in_a_row += 1
        return Verdict(delay, reason)


@dataclass
class Running:
    process: Process
    history: ProcessHistory = field(default_factory=ProcessHistory)
    pid: int | None = None
    started_at: float = 0.0
    restart_at: float | None = None


class Supervisor:
    """Runs the processes, relays their output, applies the policy."""

    def __init__(self, commands: dict[str, str], *, policy: RestartPolicy, env: dict[str, str]) -> None:
        self.policy = policy
        self.events: queue.Queue[Message] = queue.Queue()
        self.printer = Printer(sys.stdout, width=max(len(SYSTEM), *(len(f"{name}.1") for name in commands)))
        self.signals = ProcessManager()
        self.running = {
            f"{name}.1": Running(Process(command, name=f"{name}.1", env=env)) for name, command in commands.items()
        }
        self.returncode: int | None = None

    def say(self, text: str) -> None:
        self.printer.write(Message("line", f"{text}\n", datetime.datetime.now().astimezone(), SYSTEM, None))

    def start(self, name: str) -> None:
        entry = self.running[name]
        entry.history.starts += 1
        entry.started_at, entry.restart_at, entry.pid = time.monotonic(), None, None
        threading.Thread(target=entry.process.run, args=(self.events,), daemon=True, name=name).start()

    def run(self) -> int:
        for name in self.running:
            self.start(name)
        while self.returncode is None:
            self._handle(timeout=0.1)
            now = time.monotonic()
            for name, entry in self.running.items():
                if entry.restart_at is not None and now >= entry.restart_at and self.returncode is None:
                    self.start(name)
        self._stop_all()
        return self.returncode

    def stop(self, signum: int, _frame: FrameType | None = None) -> None:
        self.say(f"{signal.Signals(signum).name} received")
        self.returncode = SIGNAL_EXIT.get(signal.Signals(signum), 1)

    def _handle(self, timeout: float) -> None:
        try:
            message = self.events.get(timeout=timeout)
        except queue.Empty:
            return
        entry = self.running[message.name]
        if message.type == "line":
            self.printer.write(message)
        elif message.type == "start":
            entry.pid = message.data["pid"]
            self.say(f"{message.name} started (pid={entry.pid})")
        elif message.type == "stop":
            self._exited(message.name, entry, message.data["returncode"])

    def _exited(self, name: str, entry: Running, returncode: int) -> None:
        entry.pid = None
        self.say(f"{name} stopped (rc={returncode})")
        if self.returncode is not None:
            return
        verdict = entry.history.exited(time.monotonic() - entry.started_at, self.policy)
        if verdict.restart_in is None:
            self.say(f"{name} {verdict.reason}: stopping every process")
            self.returncode = returncode or 1
            return
        self.say(f"{name} {verdict.reason}: restarting in {verdict.restart_in:g} s")
        entry.restart_at = time.monotonic() + verdict.restart_in

    def _alive(self) -> list[Running]:
        return [entry for entry in self.running.values() if entry.pid is not None]

    def _stop_all(self) -> None:
        for entry in self._alive():
            self.say(f"sending SIGTERM to {entry.process.name} (pid {entry.pid})")
            self.signals.terminate(entry.pid)
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while self._alive() and time.monotonic() < deadline:
            self._handle(timeout=0.1)
        for entry in self._alive():
            self.say(f"sending SIGKILL to {entry.process.name} (pid {entry.pid})")
            self.signals.kill(entry.pid)
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while self._alive() and time.monotonic() < deadline:
            self._handle(timeout=0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("procfile", type=Path)
    parser.add_argument("--min-uptime", type=float, default=RestartPolicy.min_uptime)
    options = parser.parse_args(argv)
    commands = parse_procfile(options.procfile.read_text()).processes
    supervisor = Supervisor(commands, policy=RestartPolicy(min_uptime=options.min_uptime), env=dict(os.environ))
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGTERM, supervisor.stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
