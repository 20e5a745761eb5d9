"""Test helpers: run a backup's queued work in this process, the way the workers do it.

``outbox_drain`` runs the pending outbox rows of backups' tasks through the same service
functions the task bodies call (no Celery, no eager mode: the tests with real workers are in
``test_workers.py``); it stops when nothing is left, so a loop that never ends fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backups.copying import copy_lane_run
from backups.finalizing import backup_finalize
from backups.jobs import job_slice_run
from backups.pruning import prune_slice_run
from backups.scanning import backup_scan_slice
from workers.models import OutboxMessage

RUNNERS: dict[str, Callable[..., Any]] = {
    "backups.scan_slice": backup_scan_slice,
    "backups.copy_lane": copy_lane_run,
    "backups.finalize": backup_finalize,
    "backups.job_slice": job_slice_run,
    "backups.prune_slice": prune_slice_run,
}


def outbox_drain(max_steps: int = 500, only: tuple[str, ...] = tuple(RUNNERS)) -> int:
    """Run pending backups rows (of the ``only`` tasks) oldest first until none is left; returns how many ran."""
    for step in range(max_steps):
        row = (
            OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING, task_name__in=list(only))
            .order_by("id")
            .first()
        )
        if row is None:
            return step
        OutboxMessage.objects.filter(pk=row.pk).update(status=OutboxMessage.Status.DONE)
        RUNNERS[row.task_name](**row.kwargs)
    raise AssertionError(f"backups work still pending after {max_steps} steps")


def tree_snapshot(root: Path) -> dict[bytes, tuple[str, bytes]]:
    """Every directory, regular file and symlink under ``root`` (as bytes), with its content or target."""
    found: dict[bytes, tuple[str, bytes]] = {}
    base = os.fsencode(root)
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            full = os.path.join(directory, name)
            relative = os.path.relpath(full, base)
            if os.path.islink(full):
                found[relative] = ("link", os.readlink(full))
            elif os.path.isdir(full):
                found[relative] = ("dir", b"")
            elif os.path.isfile(full):
                with open(full, "rb") as handle:
                    found[relative] = ("file", handle.read())
    return found
