"""Call something at a deadline unless cancelled first, from one thread per process.

``threading.Timer`` starts a thread per use: about 0.4 ms of CPU, measured as a fifth of a
webhook POST to a local endpoint (``bench/notifications_bench.py``). Here one daemon thread
per process sleeps until the earliest armed deadline, so arming costs a lock and a dict
insert (and waking the thread only when the new deadline is the earliest). The thread is
started lazily, and again in a forked child (a Celery pool child does not inherit its parent's).

:meth:`Deadline.cancel` does not wait for a callback already running: a callback that must
not act after its owner moved on keeps its own guard (``app.db_availability`` does).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class Deadline:
    """An armed deadline; :meth:`cancel` disarms it (idempotent)."""

    __slots__ = ("_key", "_watcher")

    def __init__(self, watcher: _Watcher, key: int) -> None:
        self._watcher, self._key = watcher, key

    def cancel(self) -> None:
        self._watcher.disarm(self._key)


class _Watcher:
    def __init__(self) -> None:
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._changed = threading.Condition(threading.Lock())
        self._keys = itertools.count()
        self._wake_at = float("inf")
        threading.Thread(target=self._run, name="deadlines", daemon=True).start()

    def arm(self, at: float, callback: Callable[[], None]) -> Deadline:
        key = next(self._keys)
        with self._changed:
            self._armed[key] = (at, callback)
            if at < self._wake_at:
                self._changed.notify()
        return Deadline(self, key)

    def disarm(self, key: int) -> None:
        with self._changed:
            self._armed.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [key for key, (at, _) in self._armed.items() if at <= now]
                callbacks = [self._armed.pop(key)[1] for key in due]
                if not callbacks:
                    self._wake_at = min((at for at, _ in self._armed.values()), default=float("inf"))
                    self._changed.wait(None if self._wake_at == float("inf") else self._wake_at - now)
                    self._wake_at = float("inf")
                    continue
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # a callback's failure must not stop the deadlines of others
                    log.exception("deadline_callback_failed")


_watcher: _Watcher | None = None
_watcher_lock = threading.Lock()


def _forget_after_fork() -> None:
    """A forked child has no deadlines thread (and maybe a lock held by a parent's thread)."""
    global _watcher, _watcher_lock
    _watcher, _watcher_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def deadline_call(seconds: float, callback: Callable[[], None]) -> Deadline:
    """Run ``callback`` in ``seconds`` (on the deadlines thread) unless cancelled first."""
    global _watcher
    if _watcher is None:
        with _watcher_lock:
            if _watcher is None:
                _watcher = _Watcher()
    return _watcher.arm(time.monotonic() + max(seconds, 0.0), callback)
