"""Restore and verify jobs: created by a request, run in time-boxed slices on the ``backups`` queue.

A slice does its work first (files written, packs read), then, in one transaction with the
job row locked, checks it is still the slice the job expects, moves the cursor and counters
and queues the next slice through the outbox. A duplicate delivery of a slice finds
``slice_number`` moved on and does nothing; a slice killed midway runs again from the saved
cursor (a restore finds its own files already written: same size and SHA-256 counts as done).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from app.errors import ApiError
from backups.models import Backup, Job
from workers.outbox import outbox_enqueue_task

JOB_TASK = "backups.job_slice"
SLICE_SECONDS = 2.0


@dataclass
class SliceResult:
    """What a slice did: the new cursor, counts, problems found, and whether the job is over."""

    cursor: bytes | None
    items: int = 0
    bytes: int = 0
    skipped: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    problems_replace: bool = False  # the job's problems become these (verify's last slice)
    finished: bool = False
    error_code: str = ""
    error_message: str = ""


SliceRunner = Callable[[Job], SliceResult]
_runners: dict[str, SliceRunner] = {}  # filled by backups.restoring and backups.verifying (apps.ready)


def job_runner(kind: str) -> Callable[[SliceRunner], SliceRunner]:
    def register(runner: SliceRunner) -> SliceRunner:
        _runners[kind] = runner
        return runner

    return register


def job_slice_enqueue(*, job_id: int, slice_number: int) -> None:
    outbox_enqueue_task(
        task_name=JOB_TASK,
        kwargs={"job_id": job_id, "slice_number": slice_number},
        idempotency_key=f"{JOB_TASK}:{job_id}:{slice_number}",
    )


def job_create(*, backup: Backup, kind: str, **fields: Any) -> Job:
    """Record a restore or verify of a finished backup and queue its first slice; 409
    ``backup_not_done`` for a backup that is running, failed or cancelled."""
    with transaction.atomic():
        locked = Backup.objects.select_for_update().get(pk=backup.pk)
        if locked.state != Backup.State.DONE:
            raise ApiError("backup_not_done", f"Backup {backup.pk} is {locked.state}; only a done backup can be used.")
        job = Job.objects.create(backup=locked, kind=kind, **fields)
        job_slice_enqueue(job_id=job.pk, slice_number=0)
    return job


def job_slice_run(*, job_id: int, slice_number: int) -> bool:
    """Run one slice of a job; True if it ran. Idempotent (see the module docstring)."""
    job = Job.objects.select_related("backup").get(pk=job_id)
    if job.slice_number != slice_number or job.state in (Job.State.DONE, Job.State.FAILED):
        return False
    result = _runners[job.kind](job)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.slice_number != slice_number or job.state in (Job.State.DONE, Job.State.FAILED):
            return False
        job.cursor = result.cursor
        job.items_done += result.items
        job.bytes_done += result.bytes
        job.skipped += result.skipped
        job.problems = (result.problems if result.problems_replace else [*job.problems, *result.problems])[:1000]
        job.slice_number += 1
        job.state = Job.State.RUNNING
        if result.error_code:
            job.state, job.error_code, job.error_message = Job.State.FAILED, result.error_code, result.error_message
        elif result.finished:
            job.state = Job.State.DONE
        if job.state != Job.State.RUNNING:
            job.finished_at = timezone.now()
        else:
            job_slice_enqueue(job_id=job_id, slice_number=job.slice_number)
        job.save()
    return True
