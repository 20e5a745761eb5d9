"""Incremental runs: unchanged files are not read and store nothing; changes are found."""

from __future__ import annotations

import os

from backups.models import Backup, Chunk, FileEntry, Pack
from backups.services import backup_start
from backups.tests.conftest import source_of, write
from backups.tests.pipeline import outbox_drain


def backup_run(retailer_id: int) -> Backup:
    backup, created = backup_start(retailer_id=retailer_id)
    assert created
    outbox_drain()
    backup.refresh_from_db()
    assert backup.state == Backup.State.DONE, backup.error_message
    return backup


def entries(backup: Backup) -> dict[bytes, FileEntry]:
    return {bytes(e.path): e for e in FileEntry.objects.filter(backup=backup, kind=FileEntry.Kind.FILE)}


def test_an_unchanged_tree_reads_nothing_and_stores_no_chunk(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    for n in range(30):
        write(root, f"d{n % 3}/f{n}.bin", os.urandom(1000 + n))
    write(root, "big.bin", os.urandom(2 * 1024 * 1024))
    first = backup_run(alice.retailer.id)
    chunks, packs = Chunk.objects.count(), Pack.objects.count()

    second = backup_run(alice.retailer.id)

    assert first.bytes_read == 2 * 1024 * 1024 + sum(1000 + n for n in range(30))
    assert second.previous_id == first.pk
    assert second.bytes_read == 0
    assert second.chunks_new == 0
    assert second.bytes_new == 0
    assert second.files_reused == 31
    assert Chunk.objects.count() == chunks
    assert Pack.objects.count() == packs
    assert {p: e.chunks for p, e in entries(second).items()} == {p: e.chunks for p, e in entries(first).items()}


def test_adds_deletes_renames_and_a_same_mtime_edit_are_found(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    write(root, "keep.txt", b"unchanged")
    write(root, "delete-me.txt", b"going")
    write(root, "old-name.txt", b"renamed content")
    edited = write(root, "edited.txt", b"short")
    first = backup_run(alice.retailer.id)
    mtime_ns = edited.stat().st_mtime_ns

    (root / "delete-me.txt").unlink()
    os.rename(root / "old-name.txt", root / "new-name.txt")
    write(root, "added.txt", b"brand new")
    edited.write_bytes(b"longer than before")
    os.utime(edited, ns=(mtime_ns, mtime_ns))  # same mtime, another size
    second = backup_run(alice.retailer.id)

    now = entries(second)
    assert set(now) == {b"keep.txt", b"new-name.txt", b"added.txt", b"edited.txt"}
    assert now[b"keep.txt"].reused
    assert now[b"new-name.txt"].chunks == entries(first)[b"old-name.txt"].chunks  # dedup: no new chunk for it
    assert not now[b"edited.txt"].reused
    assert now[b"edited.txt"].size == len(b"longer than before")
    assert second.bytes_read == len(b"brand new") + len(b"longer than before") + len(b"renamed content")
    assert second.chunks_new == 2  # added.txt and edited.txt; the renamed file's chunk was stored before


def test_diff_names_added_removed_and_changed_paths(alice, bob, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    write(root, "same.txt", b"same")
    write(root, "old.txt", b"old")
    write(root, "edit.txt", b"v1")
    (root / "olddir").mkdir()
    (root / "keptdir").mkdir()
    first = backup_run(alice.retailer.id)
    (root / "old.txt").unlink()
    (root / "olddir").rmdir()
    (root / "newdir").mkdir()
    (root / "keptdir").chmod(0o700)
    write(root, "new.txt", b"new")
    write(root, "edit.txt", b"v2 is longer")
    second = backup_run(alice.retailer.id)
    write(source_of(backup_dirs, bob.retailer.id), "b.txt", b"bob's")
    bobs = backup_run(bob.retailer.id)

    diff = alice.client().get(f"/v1/backups/{second.pk}/diff/{first.pk}").json()
    across = alice.client().get(f"/v1/backups/{second.pk}/diff/{bobs.pk}")

    assert [row["path"] for row in diff["added"]] == ["new.txt", "newdir"]
    assert [row["path"] for row in diff["removed"]] == ["old.txt", "olddir"]
    assert [row["path"] for row in diff["changed"]] == ["edit.txt", "keptdir"]  # keptdir: its mode
    assert diff["counts"] == {"added": 2, "removed": 2, "changed": 2}
    assert across.status_code == 404
