"""Imported by a test's worker (``include``): the ``on_dead_letter`` hook of every backup task
fails as it does when PostgreSQL goes away between the dead letter's commit and the hook's."""

from __future__ import annotations

from typing import Any

from django.db import OperationalError

from backups import tasks


def _database_unavailable(kwargs: dict[str, Any], error: str) -> None:
    raise OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')


for _task in (tasks.scan_slice, tasks.copy_lane, tasks.finalize):
    _task.on_dead_letter = _database_unavailable
