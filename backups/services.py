"""Backup writes: start (one running per retailer), cancel, delete, fail, finish.

Every function is one transaction; work is queued through the outbox in the same
transaction (``workers.outbox``), so a crash after commit loses nothing and a rollback queues
nothing. The pipeline's slices live in ``scanning``, ``copying`` and ``finalizing``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from app.errors import ApiError
from backups.events import backup_ended_announce
from backups.exporters import export_file_name, exporter_names
from backups.locks import repository_lock
from backups.models import Backup, FileEntry, ScanCursor
from backups.pruning import prunes_wake
from backups.repository import object_delete
from workers.outbox import outbox_enqueue_task

SCAN_TASK = "backups.scan_slice"
COPY_TASK = "backups.copy_lane"
FINALIZE_TASK = "backups.finalize"


def scan_slice_enqueue(*, backup_id: int, slice_number: int) -> None:
    outbox_enqueue_task(
        task_name=SCAN_TASK,
        kwargs={"backup_id": backup_id, "slice_number": slice_number},
        idempotency_key=f"{SCAN_TASK}:{backup_id}:{slice_number}",
    )


def copy_lanes_enqueue(*, backup_id: int, origin: str) -> None:
    """Queue ``BACKUP_COPY_LANES`` copy lanes for the entries just found (``origin``: ``start`` or
    ``s<slice>``). A lane with nothing to claim while the walk goes on ends at once: lanes never
    sit in a worker process waiting, which would starve the walk's own slices on a small pool."""
    for index in range(settings.BACKUP_COPY_LANES):
        copy_lane_enqueue(backup_id=backup_id, lane=f"{origin}-{index}", generation=0)


def copy_lane_enqueue(*, backup_id: int, lane: str, generation: int) -> None:
    outbox_enqueue_task(
        task_name=COPY_TASK,
        kwargs={"backup_id": backup_id, "lane": lane, "generation": generation},
        idempotency_key=f"{COPY_TASK}:{backup_id}:{lane}:{generation}",
    )


def backup_running(*, retailer_id: int) -> Backup | None:
    return Backup.objects.filter(retailer_id=retailer_id, state__in=Backup.RUNNING).first()


def backup_start(*, retailer_id: int) -> tuple[Backup, bool]:
    """Record a backup request and queue its first scan slice and copy lanes; returns
    ``(backup, created)``. A retailer has at most one running backup (a partial unique index):
    a second call while one runs returns that one with ``created=False``. Answers in
    milliseconds: nothing of the walk runs here."""
    running = backup_running(retailer_id=retailer_id)
    if running is not None:
        return running, False
    try:
        with transaction.atomic():
            repository_lock(retailer_id=retailer_id)  # never while a prune sweeps (backups.locks)
            previous = Backup.objects.filter(retailer_id=retailer_id, state=Backup.State.DONE).order_by("-id").first()
            backup = Backup.objects.create(retailer_id=retailer_id, previous=previous)
            ScanCursor.objects.create(backup=backup, stack=[""])
            names = exporter_names()
            FileEntry.objects.bulk_create(
                [FileEntry(backup=backup, kind=FileEntry.Kind.EXPORT, path=export_file_name(n)) for n in names]
            )
            backup.files_total = len(names)
            backup.save(update_fields=["files_total"])
            scan_slice_enqueue(backup_id=backup.pk, slice_number=0)
            copy_lanes_enqueue(backup_id=backup.pk, origin="start")
    except IntegrityError:  # a concurrent click won the unique index
        running = backup_running(retailer_id=retailer_id)
        if running is None:
            raise
        return running, False
    return backup, True


def backup_cancel(*, backup: Backup) -> Backup:
    """Stop a running backup: its slices see the state and end. 409 ``not_running`` otherwise."""
    with transaction.atomic():
        changed = Backup.objects.filter(pk=backup.pk, state__in=Backup.RUNNING).update(
            state=Backup.State.CANCELLED, finished_at=timezone.now()
        )
        if not changed:
            raise ApiError("not_running")
        prunes_wake(retailer_id=backup.retailer_id)
    backup.refresh_from_db()
    return backup


def backup_delete(*, backup: Backup) -> None:
    """Delete a finished backup and its manifest; 409 ``backup_running`` while it runs. Its chunks
    stay in the repository (other snapshots may share them) until a prune removes unreferenced ones."""
    with transaction.atomic():
        locked = Backup.objects.select_for_update().get(pk=backup.pk)
        if locked.running:
            raise ApiError("backup_running")
        manifest = getattr(locked, "snapshot", None)
        name = manifest.manifest_name if manifest else None
        locked.delete()
    if name:
        object_delete(name)


def backup_fail(*, backup_id: int, code: str, message: str) -> bool:
    """End a running backup as failed and announce ``backup.failed``; False if it had ended."""
    with transaction.atomic():
        backup = Backup.objects.select_for_update().get(pk=backup_id)
        if not backup.running:
            return False
        backup.state = Backup.State.FAILED
        backup.error_code, backup.error_message = code, message[:2000]
        backup.finished_at = timezone.now()
        backup.save(update_fields=["state", "error_code", "error_message", "finished_at"])
        backup_ended_announce(backup)
        prunes_wake(retailer_id=backup.retailer_id)
    return True


def backup_task_dead_lettered(kwargs: dict[str, Any], error: str) -> None:
    """A scan, copy or finalize task of a backup failed for good (a dead letter): fail the backup
    (``task_failed``) rather than leave it running with nothing left to move it. Idempotent."""
    backup_fail(
        backup_id=int(kwargs["backup_id"]),
        code="task_failed",
        message=f"A backup task failed and became a dead letter (see the dead letters): {error}",
    )


def backup_copy_complete(*, backup_id: int) -> bool:
    """If the walk is done and no entry is left to copy, move to ``verifying`` and queue the
    finalize task (once: the backup row is locked and its state checked). True when the
    backup needs no more copying (complete now or before, or ended)."""
    with transaction.atomic():
        backup = Backup.objects.select_for_update().get(pk=backup_id)
        if backup.state not in (Backup.State.SCANNING, Backup.State.COPYING):
            return not backup.running or backup.state == Backup.State.VERIFYING
        if not ScanCursor.objects.filter(backup_id=backup_id, done=True).exists():
            return False
        open_states = (FileEntry.State.PENDING, FileEntry.State.CLAIMED)
        if FileEntry.objects.filter(backup_id=backup_id, state__in=open_states).exists():
            return False
        backup.state = Backup.State.VERIFYING
        backup.save(update_fields=["state"])
        outbox_enqueue_task(
            task_name=FINALIZE_TASK, kwargs={"backup_id": backup_id}, idempotency_key=f"{FINALIZE_TASK}:{backup_id}"
        )
    return True
