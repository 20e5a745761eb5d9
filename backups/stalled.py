"""The stalled-backup sweep: a running backup that nothing will move again is resumed or failed.

Every step of a backup queues the next through the outbox in its own transaction (scan slice →
next slice and lanes, lane → next generation or finalize), and a step's row stays ``sent`` until
the step succeeds, through its retries and database waits. So while a backup runs, one of its
tasks' outbox rows is open (``pending``/``sent``) or a lane holds a live lease. One way out leaves
neither: the step becomes a dead letter (its row ``failed``) and the ``on_dead_letter`` hook that
should fail the backup fails itself (PostgreSQL unavailable at that moment, say). Then the backup
would stay ``scanning``/``copying``/``verifying`` forever.

Beat runs :func:`backups_stalled_sweep` every minute. A running backup is **stalled** when none of
its tasks' outbox rows is open or finished within ``BACKUP_STALL_SECONDS`` (10 min: longer than
any step's hard time limit, 360 s, so no step of it can still be running), no entry holds a live
lease, and nothing else about it (created, started, a slice saved, a dead letter written) is that
recent. What is done with it depends on why, not on its state, because every state resumes from
PostgreSQL (the walk from its cursor, copying from its entry rows, finalize rewrites the same
manifest):

* a dead letter of one of its tasks → fail it ``task_failed`` (what the hook would have done: a
  dead letter is for an operator to look at and replay, not for a sweep to retry);
* no dead letter (its chain vanished some other way: a row deleted or marked done by hand, a bug)
  → resume it once: ``BACKUP_COPY_LANES`` copy lanes named ``resumed-<n>``, plus the scan slice at
  the cursor (``queued``/``scanning``) or the finalize step (``verifying``);
* stalled again after that resume → fail it ``stalled``: a backup resumes or fails, never loops.

Both failures announce ``backup.failed`` through the outbox (``services.backup_fail``). The
resume's rows are its marker: outbox rows are kept ``OUTBOX_RETENTION_SECONDS`` (7 days).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from backups.models import Backup, FileEntry, ScanCursor
from backups.services import COPY_TASK, FINALIZE_TASK, SCAN_TASK, backup_fail, copy_lane_enqueue
from workers.models import DeadLetter, OutboxMessage
from workers.outbox import outbox_enqueue_task

log = structlog.get_logger(__name__)

BACKUP_TASKS = (SCAN_TASK, COPY_TASK, FINALIZE_TASK)
RESUMED_LANE = "resumed"


def backups_stalled_sweep(*, now: datetime) -> dict[int, str]:
    """Resume or fail every stalled backup; returns ``{backup id: what was done}``. Idempotent: a
    second run finds the resumed backups moving (their new rows are open) and the failed ones ended."""
    settled = {}
    for backup in Backup.objects.filter(state__in=Backup.RUNNING).order_by("id"):
        if backup_stalled(backup=backup, now=now):
            settled[backup.pk] = backup_stalled_settle(backup=backup)
    return settled


def backup_stalled(*, backup: Backup, now: datetime) -> bool:
    """Whether nothing has moved ``backup`` for ``BACKUP_STALL_SECONDS`` and nothing will."""
    since = now - timedelta(seconds=settings.BACKUP_STALL_SECONDS)
    rows = _task_rows(backup.pk)
    cursor = ScanCursor.objects.filter(backup=backup).first()
    recent = [backup.created_at, backup.started_at, backup.copy_started_at, cursor and cursor.updated_at]
    recent += _dead_letters(backup.pk).values_list("last_failed_at", flat=True)
    return not (
        any(moment and moment > since for moment in recent)
        or rows.filter(status__in=(OutboxMessage.Status.PENDING, OutboxMessage.Status.SENT)).exists()
        or rows.filter(status=OutboxMessage.Status.DONE, done_at__gt=since).exists()
        or FileEntry.objects.filter(backup=backup, state=FileEntry.State.CLAIMED, lease_until__gt=now).exists()
    )


def backup_stalled_settle(*, backup: Backup) -> str:
    """Fail or resume a stalled backup (module docstring); returns ``task_failed``, ``stalled``,
    ``resumed`` or ``ended`` (it ended meanwhile)."""
    letter = _dead_letters(backup.pk).order_by("-last_failed_at").first()
    if letter is not None:
        message = f"A backup task failed and became a dead letter (see the dead letters): {letter.exception}"
        outcome = "task_failed" if backup_fail(backup_id=backup.pk, code="task_failed", message=message) else "ended"
    elif OutboxMessage.objects.filter(idempotency_key=_resumed_key(backup.pk)).exists():
        message = "The backup stopped moving again after the stalled-backup sweep resumed it once."
        outcome = "stalled" if backup_fail(backup_id=backup.pk, code="stalled", message=message) else "ended"
    else:
        outcome = "resumed" if _resume(backup.pk) else "ended"
    log.warning("backup_stalled", backup_id=backup.pk, retailer_id=backup.retailer_id, outcome=outcome)
    return outcome


def _resume(backup_id: int) -> bool:
    """Queue the work that moves the backup on from its state (once: fixed keys)."""
    with transaction.atomic():
        backup = Backup.objects.select_for_update().get(pk=backup_id)
        if not backup.running:
            return False
        for index in range(settings.BACKUP_COPY_LANES):
            copy_lane_enqueue(backup_id=backup_id, lane=f"{RESUMED_LANE}-{index}", generation=0)
        cursor = ScanCursor.objects.get(backup_id=backup_id)
        if not cursor.done:
            kwargs = {"backup_id": backup_id, "slice_number": cursor.slice_number}
            key = f"{SCAN_TASK}:{backup_id}:{cursor.slice_number}:{RESUMED_LANE}"
            outbox_enqueue_task(task_name=SCAN_TASK, kwargs=kwargs, idempotency_key=key)
        if backup.state == Backup.State.VERIFYING:
            key = f"{FINALIZE_TASK}:{backup_id}:{RESUMED_LANE}"
            outbox_enqueue_task(task_name=FINALIZE_TASK, kwargs={"backup_id": backup_id}, idempotency_key=key)
    return True


def _resumed_key(backup_id: int) -> str:
    """The outbox key of the first lane a resume queues: its row marks the backup resumed."""
    return f"{COPY_TASK}:{backup_id}:{RESUMED_LANE}-0:0"


def _task_rows(backup_id: int) -> QuerySet[OutboxMessage]:
    return OutboxMessage.objects.filter(task_name__in=BACKUP_TASKS, kwargs__backup_id=backup_id)


def _dead_letters(backup_id: int) -> QuerySet[DeadLetter]:
    return DeadLetter.objects.filter(
        status=DeadLetter.Status.OPEN, task_name__in=BACKUP_TASKS, kwargs__backup_id=backup_id
    )
