"""``./sf run``'s supervisor (``app.supervisor``): the restart rule, then real processes under it.

The rule: restart, with backoff, a process that had run at least ``min_uptime``; stop the
stack (non-zero) after three quick failures in a row, or at once when a process exits
within ``min_uptime`` of its first start (a taken port: ``test_embedded_stack.py``).
The process tests shorten ``min_uptime`` to 1 s (``--min-uptime``)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.supervisor import ProcessHistory, RestartPolicy
from workers.testing import ROOT, wait_until

POLICY = RestartPolicy()
STARTED = re.compile(r"system\s+\| (?P<name>\w+)\.1 started \(pid=(?P<pid>\d+)\)")


def _history_after_first_start() -> ProcessHistory:
    history = ProcessHistory()
    history.starts = 1
    return history


def _exit(history: ProcessHistory, ran: float) -> float | None:
    verdict = history.exited(ran, POLICY)
    history.starts += verdict.restart_in is not None
    return verdict.restart_in


def test_a_process_that_ran_long_enough_is_restarted_with_a_doubling_capped_backoff():
    history = _history_after_first_start()

    delays = [_exit(history, ran=POLICY.min_uptime + 1) for _ in range(7)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_the_backoff_starts_again_after_a_run_of_a_minute():
    history = _history_after_first_start()
    for _ in range(4):
        _exit(history, ran=POLICY.min_uptime + 1)

    assert _exit(history, ran=POLICY.backoff_reset) == 1.0


def test_a_process_that_never_came_up_stops_the_stack_at_once():
    history = _history_after_first_start()

    assert _exit(history, ran=POLICY.min_uptime - 1) is None


def test_three_quick_failures_in_a_row_after_a_restart_stop_the_stack():
    history = _history_after_first_start()
    assert _exit(history, ran=POLICY.min_uptime + 1) == 1.0

    verdicts = [_exit(history, ran=0.1) for _ in range(3)]

    assert verdicts == [2.0, 4.0, None]


def test_a_good_run_between_quick_failures_resets_their_count():
    history = _history_after_first_start()
    _exit(history, ran=POLICY.min_uptime + 1)
    _exit(history, ran=0.1)
    _exit(history, ran=0.1)
    _exit(history, ran=POLICY.min_uptime + 1)

    assert [_exit(history, ran=0.1) is None for _ in range(3)] == [False, False, True]


class Stack:
    """``python -m app.supervisor`` on a Procfile of the test's own."""

    def __init__(self, folder: Path, procfile: str) -> None:
        (folder / "Procfile").write_text(procfile)
        self.log = folder / "supervisor.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.supervisor", str(folder / "Procfile"), "--min-uptime", "1"],
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def starts(self, name: str) -> list[int]:
        return [int(match["pid"]) for match in STARTED.finditer(self.output()) if match["name"] == name]

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    started: list[Stack] = []

    def start(procfile: str) -> Stack:
        started.append(Stack(tmp_path, procfile))
        return started[-1]

    yield start
    for running in started:
        running.end()


STEADY = "steady: exec sleep 60\n"


def test_a_process_that_exits_after_running_is_restarted_and_the_others_keep_running(stack):
    running = stack(STEADY + "flaky: echo up; sleep 1.5; exit 1\n")

    wait_until(lambda: len(running.starts("flaky")) >= 3, timeout=30, interval=0.2)

    assert running.process.poll() is None, running.output()
    assert len(running.starts("steady")) == 1
    assert len(set(running.starts("flaky"))) >= 3
    assert "flaky.1 ran 1.5 s: restarting in 1 s" in running.output()
    assert "flaky.1 ran 1.5 s: restarting in 2 s" in running.output()
    running.end()
    assert running.process.returncode == 143


def test_three_quick_failures_in_a_row_stop_every_process_with_a_non_zero_exit(stack, tmp_path):
    marker = tmp_path / "came-up-once"
    running = stack(STEADY + f"flaky: if [ -e {marker} ]; then exit 4; fi; touch {marker}; sleep 1.5; exit 1\n")

    returncode = running.process.wait(timeout=30)

    assert returncode == 4, running.output()
    assert len(running.starts("flaky")) == 4  # the first run and three quick failures
    assert "flaky.1 3 quick failures in a row: stopping every process" in running.output()
    steady = running.starts("steady")[0]
    wait_until(lambda: not Path(f"/proc/{steady}").exists(), timeout=10)


def test_a_process_that_fails_at_its_first_start_stops_the_stack_at_once(stack):
    running = stack(STEADY + "broken: exit 3\n")

    assert running.process.wait(timeout=30) == 3, running.output()
    assert len(running.starts("broken")) == 1
    assert "broken.1 exited within 1 s of its first start: stopping every process" in running.output()
