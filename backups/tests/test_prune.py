"""Prune: backups past retention go, and so do the chunks and packs nothing references any more;
what remains restores and verifies. A prune waits while a backup runs (real workers: test_workers)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from backups.jobs import job_create
from backups.manifest import manifest_path
from backups.models import Backup, BackupPolicy, Chunk, FileEntry, Job, Pack, Prune
from backups.pruning import prune_request, prune_slice_run
from backups.repository import pack_path
from backups.services import backup_start
from backups.tests.conftest import source_of, write
from backups.tests.pipeline import outbox_drain
from backups.tests.test_incremental import backup_run

ONLY_PRUNE = ("backups.prune_slice",)


def prune_run(retailer_id: int) -> Prune:
    prune, created = prune_request(retailer_id=retailer_id)
    assert created
    outbox_drain()
    prune.refresh_from_db()
    return prune


def keep_only_last(retailer_id: int, n: int) -> None:
    rule = {"keep_last": n, "keep_daily": 0, "keep_weekly": 0}
    BackupPolicy.objects.update_or_create(retailer_id=retailer_id, defaults=rule)


def verified(backup: Backup) -> Job:
    job = job_create(backup=backup, kind=Job.Kind.VERIFY)
    outbox_drain()
    job.refresh_from_db()
    return job


def stored_packs(dirs: dict[str, Path], retailer_id: int) -> set[str]:
    return {path.name for path in (dirs["repository"] / "packs" / str(retailer_id)).iterdir()}


def referenced_chunks(retailer_id: int) -> set[str]:
    rows = FileEntry.objects.filter(backup__retailer_id=retailer_id, backup__state="done")
    return {chunk for chunks in rows.values_list("chunks", flat=True) for chunk in chunks}


def test_prune_expires_backups_past_retention_and_removes_their_chunks_and_packs(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    write(root, "kept.bin", os.urandom(300_000))
    write(root, "replaced.bin", os.urandom(3_000_000))  # 1 to 3 chunks, all dead once replaced
    old = backup_run(alice.retailer.id)
    write(root, "replaced.bin", os.urandom(200_000))
    new = backup_run(alice.retailer.id)
    keep_only_last(alice.retailer.id, 1)
    chunks_before = Chunk.objects.filter(retailer=alice.retailer).count()

    prune = prune_run(alice.retailer.id)

    assert prune.state == Prune.State.DONE
    assert prune.backups_expired == 1
    assert not Backup.objects.filter(pk=old.pk).exists()
    assert not (backup_dirs["repository"] / manifest_path(alice.retailer.id, old.pk)).exists()
    assert prune.chunks_deleted == chunks_before - len(referenced_chunks(alice.retailer.id)) >= 1
    assert set(Chunk.objects.filter(retailer=alice.retailer).values_list("chunk_id", flat=True)) == referenced_chunks(
        alice.retailer.id
    )
    assert prune.packs_deleted + prune.packs_rewritten >= 1
    assert prune.bytes_freed > 2_500_000
    assert stored_packs(backup_dirs, alice.retailer.id) == set(Pack.objects.values_list("name", flat=True))
    assert verified(new).problems == []
    again = prune_run(alice.retailer.id)
    assert (again.backups_expired, again.chunks_deleted, again.packs_deleted, again.packs_rewritten) == (0, 0, 0, 0)


def test_a_deleted_backups_chunks_go_at_the_next_prune(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    write(root, "a.bin", os.urandom(400_000))
    first = backup_run(alice.retailer.id)
    write(root, "a.bin", os.urandom(400_000))
    second = backup_run(alice.retailer.id)
    assert alice.client().delete(f"/v1/backups/{first.pk}").status_code == 204

    prune = prune_run(alice.retailer.id)

    assert prune.backups_expired == 0  # the defaults keep both; the deletion was the user's
    assert prune.chunks_deleted >= 1
    assert set(Chunk.objects.values_list("chunk_id", flat=True)) == referenced_chunks(alice.retailer.id)
    assert verified(second).problems == []


def test_a_prune_waits_while_a_backup_runs_and_goes_on_when_it_ends(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    write(root, "a.bin", os.urandom(100_000))
    first = backup_run(alice.retailer.id)
    backup_start(retailer_id=alice.retailer.id)
    prune, _ = prune_request(retailer_id=alice.retailer.id)

    outbox_drain(only=ONLY_PRUNE)
    prune.refresh_from_db()
    waiting = prune.state
    outbox_drain()  # the backup ends, which wakes the prune
    prune.refresh_from_db()

    assert waiting == Prune.State.WAITING
    assert prune.state == Prune.State.DONE
    assert Backup.objects.filter(retailer=alice.retailer, state="done").count() == 2
    assert verified(first).problems == []


def test_a_redelivered_prune_slice_does_nothing(alice, backup_dirs) -> None:
    write(source_of(backup_dirs, alice.retailer.id), "a.bin", b"x")
    backup_run(alice.retailer.id)
    prune, _ = prune_request(retailer_id=alice.retailer.id)
    outbox_drain()

    assert prune_slice_run(prune_id=prune.pk, slice_number=0) is False
    assert prune_slice_run(prune_id=prune.pk, slice_number=1) is False


def test_pack_files_no_row_names_are_removed_once_an_hour_old(alice, backup_dirs) -> None:
    write(source_of(backup_dirs, alice.retailer.id), "a.bin", b"x")
    backup_run(alice.retailer.id)
    directory = backup_dirs["repository"] / "packs" / str(alice.retailer.id)
    stale, fresh = directory / "stale.pack", directory / "fresh.pack"
    stale.write_bytes(b"left by a crash")
    fresh.write_bytes(b"being committed right now")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    prune = prune_run(alice.retailer.id)

    assert prune.orphans_deleted == 1
    assert not stale.exists()
    assert fresh.exists()
    assert pack_path(alice.retailer.id, Pack.objects.get().name).split("/")[-1] in stored_packs(
        backup_dirs, alice.retailer.id
    )


def test_a_second_prune_request_answers_the_open_one_and_tenancy_holds(alice, bob, backup_dirs) -> None:
    first = alice.client().post("/v1/prunes")
    second = alice.client().post("/v1/prunes")

    assert first.status_code == 202
    assert first["Location"] == f"/v1/prunes/{first.json()['id']}"
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert bob.client().get(first["Location"]).status_code == 404
    outbox_drain()
    assert alice.client().get(first["Location"]).json()["state"] == "done"
