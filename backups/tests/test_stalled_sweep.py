"""The stalled-backup sweep (``backups/stalled.py``): a backup left running when its chain of
tasks broke is failed (a dead letter) or resumed once (no dead letter), and a backup that moves is
left alone. The sweep's period is production's (``BACKUP_STALL_SECONDS``, 10 min): the tests move
the backup's evidence into the past instead of shortening it."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backups.manifest import manifest_lines
from backups.models import Backup, FileEntry, ScanCursor
from backups.services import backup_start
from backups.stalled import backups_stalled_sweep
from backups.tests.conftest import backup_env, source_of, write
from backups.tests.pipeline import outbox_drain
from workers.models import DeadLetter, OutboxMessage
from workers.outbox import outbox_enqueue_task
from workers.testing import wait_until

OPEN = (OutboxMessage.Status.PENDING, OutboxMessage.Status.SENT)


def backdate(backup_id: int, seconds: float) -> None:
    """Move every moment the sweep reads about a backup ``seconds`` into the past."""
    past = timezone.now() - timedelta(seconds=seconds)
    FileEntry.objects.filter(backup_id=backup_id, lease_until__isnull=False).update(
        lease_until=F("lease_until") - timedelta(seconds=seconds)
    )
    for field in ("created_at", "started_at", "copy_started_at"):
        Backup.objects.filter(pk=backup_id, **{f"{field}__isnull": False}).update(**{field: past})
    ScanCursor.objects.filter(backup_id=backup_id).update(updated_at=past)
    OutboxMessage.objects.filter(kwargs__backup_id=backup_id, done_at__isnull=False).update(done_at=past)
    DeadLetter.objects.filter(kwargs__backup_id=backup_id).update(last_failed_at=past)


def open_rows(backup_id: int) -> int:
    return OutboxMessage.objects.filter(kwargs__backup_id=backup_id, status__in=OPEN).count()


def sweep_on_the_worker(number: int) -> None:
    """Queue one sweep through the outbox (beat's entry, run now) and wait for the worker to run it."""
    key = f"test:backups.stalled_sweep:{number}"
    with transaction.atomic():
        outbox_enqueue_task(task_name="backups.stalled_sweep", kwargs={}, idempotency_key=key)
    wait_until(
        lambda: OutboxMessage.objects.filter(idempotency_key=key, status=OutboxMessage.Status.DONE).exists(),
        timeout=30,
        interval=0.1,
        message="the worker ran the sweep",
    )


@pytest.mark.timeout(240)
def test_a_backup_whose_dead_letter_hook_failed_is_failed_by_the_sweep_once_its_period_passed(
    alice, backup_dirs, celery_worker, outbox_relay
) -> None:
    write(source_of(backup_dirs, alice.retailer.id), "a.bin", os.urandom(10_000))
    broken = backup_env(backup_dirs, BACKUP_STORAGE="backups.tests.full_storage.BrokenDiskStorage")
    worker = celery_worker(["backups"], concurrency=1, extra_env=broken, include=["backups.tests.hook_unavailable"])
    outbox_relay()
    backup_id = alice.client().post("/v1/backups").json()["id"]
    wait_until(
        lambda: DeadLetter.objects.filter(task_name="backups.copy_lane").exists() and not open_rows(backup_id),
        timeout=3 * settings.BACKUP_LEASE_SECONDS + 60,  # the other lane takes the failed one's batch after its lease
        interval=0.1,
        message="every copy lane became a dead letter",
    )
    left_running = Backup.objects.get(pk=backup_id).state

    sweep_on_the_worker(1)  # within the period: nothing happens yet
    within_period = Backup.objects.get(pk=backup_id).state
    backdate(backup_id, settings.BACKUP_STALL_SECONDS + 1)
    sweep_on_the_worker(2)

    backup = Backup.objects.get(pk=backup_id)
    assert left_running == Backup.State.COPYING  # the gap: the hook failed, nothing moves the backup
    assert worker.events("dead_letter_hook_failed")  # ...because the hook raised
    assert {letter.exception.split(":")[0] for letter in DeadLetter.objects.all()} == {"OSError"}  # the task's own
    assert within_period == Backup.State.COPYING
    assert backup.state == Backup.State.FAILED
    assert backup.error_code == "task_failed"
    assert backup.error_message.startswith("A backup task failed and became a dead letter")
    print(f"[backups, stalled sweep] {backup.error_message}")  # noqa: T201
    event = OutboxMessage.objects.get(idempotency_key=f"event:backup.failed:backup:{backup_id}:1")
    assert event.kwargs["payload"]["error_code"] == "task_failed"
    assert worker.events("backup_stalled")[0]["outcome"] == "task_failed"


def test_a_backup_whose_chain_vanished_is_resumed_once_and_finishes(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    for n in range(5):
        write(root, f"d/f{n}.bin", os.urandom(50_000))
    backup, _ = backup_start(retailer_id=alice.retailer.id)
    outbox_drain(only=("backups.scan_slice",))
    lost = OutboxMessage.objects.filter(kwargs__backup_id=backup.pk, status__in=OPEN)
    assert lost.update(status=OutboxMessage.Status.DONE, done_at=timezone.now()) > 0  # the copy lanes vanish
    backdate(backup.pk, settings.BACKUP_STALL_SECONDS + 1)

    first = backups_stalled_sweep(now=timezone.now())
    again = backups_stalled_sweep(now=timezone.now())  # the resumed lanes are queued: not stalled
    outbox_drain()
    after = backups_stalled_sweep(now=timezone.now())

    backup.refresh_from_db()
    assert (first, again, after) == ({backup.pk: "resumed"}, {}, {})
    assert backup.state == Backup.State.DONE
    lines = list(manifest_lines(backup.snapshot.manifest_name))
    assert sorted(line["path"] for line in lines if line["kind"] == "file") == [f"d/f{n}.bin" for n in range(5)]


def test_a_backup_stalled_again_after_its_resume_is_failed_as_stalled(alice, backup_dirs) -> None:
    write(source_of(backup_dirs, alice.retailer.id), "a.txt", b"a")
    backup, _ = backup_start(retailer_id=alice.retailer.id)
    vanish = {"status": OutboxMessage.Status.DONE, "done_at": timezone.now()}
    OutboxMessage.objects.filter(kwargs__backup_id=backup.pk, status__in=OPEN).update(**vanish)
    backdate(backup.pk, settings.BACKUP_STALL_SECONDS + 1)
    resumed = backups_stalled_sweep(now=timezone.now())
    OutboxMessage.objects.filter(kwargs__backup_id=backup.pk, status__in=OPEN).update(**vanish)  # lost again
    backdate(backup.pk, settings.BACKUP_STALL_SECONDS + 1)

    failed = backups_stalled_sweep(now=timezone.now())

    backup.refresh_from_db()
    assert (resumed, failed) == ({backup.pk: "resumed"}, {backup.pk: "stalled"})
    assert backup.state == Backup.State.FAILED
    assert backup.error_code == "stalled"
    assert OutboxMessage.objects.filter(idempotency_key=f"event:backup.failed:backup:{backup.pk}:1").exists()


def test_a_backup_with_work_queued_running_or_recent_is_not_stalled(alice, backup_dirs) -> None:
    write(source_of(backup_dirs, alice.retailer.id), "a.txt", b"a")
    backup, _ = backup_start(retailer_id=alice.retailer.id)
    backdate(backup.pk, settings.BACKUP_STALL_SECONDS + 1)
    queued = backups_stalled_sweep(now=timezone.now())  # its first slice and lanes are pending
    OutboxMessage.objects.filter(kwargs__backup_id=backup.pk, status__in=OPEN).update(
        status=OutboxMessage.Status.DONE, done_at=timezone.now()
    )
    just_moved = backups_stalled_sweep(now=timezone.now())  # a step of it finished moments ago
    backdate(backup.pk, settings.BACKUP_STALL_SECONDS + 1)
    FileEntry.objects.filter(backup=backup).update(
        state=FileEntry.State.CLAIMED, lease_until=timezone.now() + timedelta(seconds=30)
    )
    leased = backups_stalled_sweep(now=timezone.now())  # a lane holds a live lease

    backup.refresh_from_db()
    assert (queued, just_moved, leased) == ({}, {}, {})
    assert backup.running
