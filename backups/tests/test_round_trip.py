"""A full backup, verify and restore, byte for byte, run through the services (one process)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backups.chunking import MIN_CHUNK
from backups.jobs import job_create
from backups.models import Backup, FileEntry, Job
from backups.services import backup_start
from backups.tests.conftest import source_of, write
from backups.tests.pipeline import outbox_drain, tree_snapshot
from workers.models import OutboxMessage

NON_UTF8 = b"caf\xe9-\xff.txt"  # Latin-1 bytes: not valid UTF-8


def tricky_tree(root: Path) -> None:
    write(root, "empty.txt")
    write(root, "small.txt", b"hello\n")
    write(root, "exactly-min-chunk.bin", os.urandom(MIN_CHUNK))
    write(root, b"deep/er/" + NON_UTF8, b"bytes in a name that is not UTF-8")
    write(root, "deep/random.bin", os.urandom(3 * 1024 * 1024 + 17))
    (root / "empty-dir").mkdir()
    with open(root / "sparse.img", "wb") as handle:
        handle.truncate(64 * 1024 * 1024)
        handle.seek(32 * 1024 * 1024)
        handle.write(b"middle")
    os.symlink("small.txt", root / "link-to-small")
    os.symlink("/etc/passwd", root / "link-outside")  # recorded, never followed
    os.mkfifo(root / "a-fifo")  # special: skipped and counted


def backup_run(retailer_id: int) -> Backup:
    backup, created = backup_start(retailer_id=retailer_id)
    assert created
    outbox_drain()
    backup.refresh_from_db()
    return backup


def test_backup_restore_round_trip_is_byte_for_byte(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    tricky_tree(root)

    backup = backup_run(alice.retailer.id)

    assert backup.state == Backup.State.DONE, (backup.error_code, backup.error_message)
    assert backup.total_final
    assert backup.files_special == 1
    assert backup.files_unreadable == 0
    assert backup.files_done == backup.files_total
    restore = job_create(backup=backup, kind=Job.Kind.RESTORE, target="r1", existing=Job.Existing.FAIL)
    outbox_drain()
    restore.refresh_from_db()
    assert restore.state == Job.State.DONE, restore.error_message
    expected = tree_snapshot(root)
    assert b"a-fifo" not in expected
    assert len(expected) == 11
    assert tree_snapshot(backup_dirs["restore"] / str(alice.retailer.id) / "r1") == expected
    restored_sparse = backup_dirs["restore"] / str(alice.retailer.id) / "r1" / "sparse.img"
    assert restored_sparse.stat().st_blocks * 512 < 1024 * 1024  # the holes stayed holes


def test_backup_of_a_retailer_without_a_source_directory_holds_its_data_export(alice, backup_dirs) -> None:
    backup = backup_run(alice.retailer.id)

    assert backup.state == Backup.State.DONE
    export = FileEntry.objects.get(backup=backup, kind=FileEntry.Kind.EXPORT)
    assert bytes(export.path) == b"catalog.jsonl"
    assert not OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING, task_name__startswith="backups.")


@pytest.mark.parametrize("existing", ["fail", "skip", "overwrite"])
def test_restore_onto_existing_files_follows_existing(alice, backup_dirs, existing) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    write(root, "a.txt", b"from the backup")
    write(root, "b.txt", b"also from the backup")
    backup = backup_run(alice.retailer.id)
    target = backup_dirs["restore"] / str(alice.retailer.id) / "t"
    write(target, "a.txt", b"already there")

    job = job_create(backup=backup, kind=Job.Kind.RESTORE, target="t", existing=existing)
    outbox_drain()

    job.refresh_from_db()
    if existing == "fail":
        assert job.state == Job.State.FAILED
        assert job.error_code == "restore_conflict"
        assert "a.txt" in job.error_message
    else:
        assert job.state == Job.State.DONE
        kept = {"skip": b"already there", "overwrite": b"from the backup"}[existing]
        assert (target / "a.txt").read_bytes() == kept
        assert (target / "b.txt").read_bytes() == b"also from the backup"
