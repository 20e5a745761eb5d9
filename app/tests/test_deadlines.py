"""The deadlines thread: callbacks run at their deadline, earliest first, never once
cancelled, and a forked child gets a thread of its own."""

from __future__ import annotations

import os
import threading
import time

from app.deadlines import deadline_call


def test_callbacks_run_at_their_deadlines_earliest_first_and_cancelled_ones_never() -> None:
    fired: list[tuple[str, float]] = []
    started = time.monotonic()
    done = threading.Event()

    def record(name: str) -> None:
        fired.append((name, time.monotonic() - started))
        if name == "late":
            done.set()

    deadline_call(0.4, lambda: record("late"))
    deadline_call(0.1, lambda: record("early"))  # armed after a later one: wakes the thread sooner
    deadline_call(0.2, lambda: record("cancelled")).cancel()

    assert done.wait(5)
    assert [name for name, _ in fired] == ["early", "late"]
    assert fired[0][1] >= 0.1
    assert fired[1][1] >= 0.4


def test_a_failing_callback_does_not_stop_the_others() -> None:
    ran = threading.Event()

    def fail() -> None:
        raise RuntimeError("a callback's own failure")

    deadline_call(0.05, fail)
    deadline_call(0.1, ran.set)

    assert ran.wait(5)


def test_a_forked_child_keeps_deadlines_with_a_thread_of_its_own() -> None:
    deadline_call(60, lambda: None)  # the parent's thread exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: exits 0 only if its deadline fired
        fired = threading.Event()
        deadline_call(0.05, fired.set)
        os.write(write, b"1" if fired.wait(5) else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
