"""What goes wrong on the way: a file gone before it is read, a full repository."""

from __future__ import annotations

import os

from backups import copying
from backups.models import Backup, Chunk, FileEntry, Pack
from backups.repository import pack_path, storage_reset
from backups.services import backup_start
from backups.tests.conftest import source_of, write
from backups.tests.pipeline import outbox_drain
from workers.models import OutboxMessage


def test_a_file_removed_between_listing_and_reading_is_reported_and_the_backup_finishes(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    write(root, "stays.txt", b"here")
    gone = write(root, "gone.txt", b"soon gone")
    backup, _ = backup_start(retailer_id=alice.retailer.id)
    outbox_drain(only=("backups.scan_slice",))
    gone.unlink()

    outbox_drain()

    backup.refresh_from_db()
    assert backup.state == Backup.State.DONE
    assert backup.files_unreadable == 1
    entry = FileEntry.objects.get(backup=backup, path=b"gone.txt")
    assert entry.state == FileEntry.State.UNREADABLE
    assert "FileNotFoundError" in entry.error
    assert FileEntry.objects.get(backup=backup, path=b"stays.txt").state == FileEntry.State.DONE


def test_a_full_repository_fails_the_backup_clearly_and_leaves_the_index_consistent(
    alice, backup_dirs, settings, monkeypatch
) -> None:
    settings.BACKUP_STORAGE = "backups.tests.full_storage.FullDiskStorage"
    storage_reset()
    root = source_of(backup_dirs, alice.retailer.id)
    for n in range(8):
        write(root, f"f{n}.bin", os.urandom(100_000))
    settings.BACKUP_COPY_LANES = 1
    monkeypatch.setattr(copying, "BATCH_MAX_ENTRIES", 2)  # several packs: some fit before the disk is full
    backup, _ = backup_start(retailer_id=alice.retailer.id)

    outbox_drain()

    backup.refresh_from_db()
    assert backup.state == Backup.State.FAILED
    assert backup.error_code == "repository_full"
    assert "No space left on device" in backup.error_message
    assert OutboxMessage.objects.filter(idempotency_key=f"event:backup.failed:backup:{backup.pk}:1").exists()
    packs = list(Pack.objects.filter(retailer=alice.retailer))
    assert packs  # some packs were written before the disk filled
    for pack in packs:
        assert (backup_dirs["repository"] / pack_path(alice.retailer.id, pack.name)).exists()
    assert Chunk.objects.filter(retailer=alice.retailer).exclude(pack__in=packs).count() == 0
