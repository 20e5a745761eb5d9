"""Celery entry points of backups: thin, idempotent, each a short slice on the ``backups`` queue.

Time limits are far below the broker's visibility timeout (3,600 s): a scan slice is time-boxed
at ``BACKUP_SCAN_SLICE_SECONDS`` (2 s) plus one directory, a copy lane at
``BACKUP_COPY_SLICE_SECONDS`` (20 s) plus the file it is in (a 10 GiB file at ~150 MB/s: ~70 s).
"""

from __future__ import annotations

from django.utils import timezone

from backups.copying import copy_lane_run
from backups.finalizing import backup_finalize
from backups.jobs import job_slice_run
from backups.pruning import prune_slice_run, prunes_waiting_wake_all
from backups.scanning import backup_scan_slice
from backups.scheduling import scheduled_backups_start
from backups.services import backup_task_dead_lettered
from backups.stalled import backups_stalled_sweep
from workers.reliable import reliable_task
from workers.routing import Queue


@reliable_task(
    name="backups.scan_slice",
    queue=Queue.BACKUPS,
    on_dead_letter=backup_task_dead_lettered,
    soft_time_limit=120,
    time_limit=150,
)
def scan_slice(*, backup_id: int, slice_number: int, idempotency_key: str) -> bool:
    """One slice of the walk; queues the next in its transaction. A duplicate does nothing."""
    return backup_scan_slice(backup_id=backup_id, slice_number=slice_number)


@reliable_task(
    name="backups.copy_lane",
    queue=Queue.BACKUPS,
    on_dead_letter=backup_task_dead_lettered,
    soft_time_limit=300,
    time_limit=360,
)
def copy_lane(*, backup_id: int, lane: str, generation: int, idempotency_key: str) -> str:
    """Copy claimed batches for ~20 s, then hand over to the lane's next generation."""
    return copy_lane_run(backup_id=backup_id, lane=lane, generation=generation)


@reliable_task(
    name="backups.finalize",
    queue=Queue.BACKUPS,
    on_dead_letter=backup_task_dead_lettered,
    soft_time_limit=300,
    time_limit=360,
)
def finalize(*, backup_id: int, idempotency_key: str) -> bool:
    """Write the manifest and end the backup (once; a redelivery rewrites the same manifest)."""
    return backup_finalize(backup_id=backup_id)


@reliable_task(name="backups.job_slice", queue=Queue.BACKUPS, soft_time_limit=120, time_limit=150)
def job_slice(*, job_id: int, slice_number: int, idempotency_key: str) -> bool:
    """One slice of a restore or verify job; queues the next. A duplicate does nothing."""
    return job_slice_run(job_id=job_id, slice_number=slice_number)


@reliable_task(name="backups.prune_slice", queue=Queue.BACKUPS, soft_time_limit=120, time_limit=150)
def prune_slice(*, prune_id: int, slice_number: int, idempotency_key: str) -> bool:
    """One slice of a prune (sweep, or ~2 s of repacking); queues the next. A duplicate does nothing."""
    return prune_slice_run(prune_id=prune_id, slice_number=slice_number)


@reliable_task(name="backups.schedule_tick", queue=Queue.BACKUPS, soft_time_limit=60, time_limit=90)
def schedule_tick(*, idempotency_key: str) -> int:
    """Beat, every minute: start the scheduled backups that are due (once per retailer and local
    day, however often this runs) and wake prunes left waiting. Returns how many started."""
    started = scheduled_backups_start(now=timezone.now())
    prunes_waiting_wake_all()
    return len(started)


@reliable_task(name="backups.stalled_sweep", queue=Queue.BACKUPS, soft_time_limit=60, time_limit=90)
def stalled_sweep(*, idempotency_key: str) -> dict[int, str]:
    """Beat, every minute: resume or fail the running backups that nothing will move again
    (``backups/stalled.py``). Idempotent; a few queries per running backup."""
    return backups_stalled_sweep(now=timezone.now())
