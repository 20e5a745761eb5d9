"""Backups on real Celery workers and the outbox relay: the click answers at once, the work runs
on the ``backups`` queue, and a worker killed mid-copy loses nothing."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from backups.chunking import chunk_id, stream_chunks
from backups.finalizing import manifest_line, snapshot_entries
from backups.manifest import manifest_lines
from backups.models import Backup, Chunk, FileEntry
from backups.tests.conftest import backup_env, source_of, write
from backups.tests.pipeline import tree_snapshot
from backups.tests.test_round_trip import tricky_tree
from workers.models import DeadLetter, OutboxMessage
from workers.testing import wait_until


def poll(tenant, url: str, timeout: float = 60) -> dict:
    def finished() -> dict | None:
        body = tenant.client().get(url).json()
        return body if body["state"] in ("done", "failed", "cancelled") else None

    return wait_until(finished, timeout=timeout, interval=0.2, message=f"{url} finished")


@pytest.mark.timeout(120)
def test_round_trip_on_real_workers(alice, backup_dirs, celery_worker, outbox_relay) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    tricky_tree(root)
    celery_worker(["backups"], concurrency=2, extra_env=backup_env(backup_dirs))
    outbox_relay()

    accepted = alice.client().post("/v1/backups")
    backup = poll(alice, accepted["Location"])
    restore = alice.client().post(f"/v1/backups/{backup['id']}/restore", {"target": "back"}, format="json")
    restored = poll(alice, restore["Location"])

    assert accepted.status_code == 202
    assert backup["state"] == "done", backup
    assert backup["files_special"] == 1
    assert restored["state"] == "done", restored
    expected = tree_snapshot(root)
    assert tree_snapshot(backup_dirs["restore"] / str(alice.retailer.id) / "back") == expected
    event = OutboxMessage.objects.get(idempotency_key=f"event:backup.completed:backup:{backup['id']}:1")
    payload = event.kwargs["payload"]
    assert payload["backup_id"] == backup["id"]
    assert payload["retailer_id"] == alice.retailer.id
    assert payload["state"] == "done"
    assert payload["files"] == backup["files_done"]
    assert payload["bytes"] == backup["bytes_done"]
    assert payload["new_bytes"] == backup["bytes_new"] > 0
    assert payload["duration_seconds"] >= 0
    assert payload["error_code"] == ""


@pytest.mark.faults
@pytest.mark.xdist_group("faults")
@pytest.mark.timeout(180)
def test_kill_9_of_a_pool_process_mid_copy_resumes_with_the_same_manifest(
    alice, backup_dirs, celery_worker, outbox_relay
) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    for n in range(160):
        write(root, f"d{n % 8}/f{n:03d}.bin", os.urandom(1024 * 1024))
    worker = celery_worker(["backups"], concurrency=1, extra_env=backup_env(backup_dirs))
    outbox_relay()

    accepted = alice.client().post("/v1/backups")
    backup_id = accepted.json()["id"]
    wait_until(
        lambda: FileEntry.objects.filter(backup_id=backup_id, state=FileEntry.State.DONE, kind="file").exists(),
        timeout=60,
        interval=0.02,
        message="copying started",
    )
    (child,) = worker.child_pids()
    worker.kill_pid(child)
    done_at_kill = FileEntry.objects.filter(backup_id=backup_id, state="done", kind="file").count()
    killed = poll(alice, accepted["Location"], timeout=120)
    again = alice.client().post("/v1/backups")
    rerun = poll(alice, again["Location"], timeout=60)

    assert done_at_kill < 160, "the kill came after the copy finished: the test proves nothing"
    assert killed["state"] == "done", killed
    assert killed["files_done"] == killed["files_total"]
    assert rerun["state"] == "done"
    assert rerun["bytes_read"] == 0
    assert rerun["chunks_new"] == 0
    first = list(manifest_lines(Backup.objects.get(pk=backup_id).snapshot.manifest_name))
    second = list(manifest_lines(Backup.objects.get(pk=rerun["id"]).snapshot.manifest_name))
    assert len(first) == 160 + 8 + 1  # files, directories, the catalog export
    assert first == second  # an uninterrupted run of the same tree writes the same manifest
    assert first == [manifest_line(entry) for entry in snapshot_entries(backup_id)]
    referenced = {chunk for line in first for chunk in line.get("chunks", [])}
    assert Chunk.objects.filter(retailer=alice.retailer).count() == len(referenced)  # indexed once each, none orphaned


@pytest.mark.timeout(180)
def test_prune_during_a_running_backup_keeps_every_chunk_it_reuses_or_writes(
    alice, backup_dirs, celery_worker, outbox_relay
) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    revived = os.urandom(200_000)  # one chunk (below the 256 KiB minimum)
    write(root, "revived.bin", revived)
    write(root, "unchanged.bin", os.urandom(700_000))
    gone_bytes = os.urandom(200_000)  # one chunk (the minimum is 256 KiB)
    gone = write(root, "gone.bin", gone_bytes)
    celery_worker(["backups"], concurrency=3, extra_env=backup_env(backup_dirs, BACKUP_COPY_SLICE_SECONDS="2"))
    outbox_relay()
    first = poll(alice, alice.client().post("/v1/backups")["Location"])
    write(root, "revived.bin", os.urandom(200_000))
    gone.unlink()
    second = poll(alice, alice.client().post("/v1/backups")["Location"])
    assert alice.client().delete(f"/v1/backups/{first['id']}").status_code == 204
    # The first backup's revived.bin is now dead in the index; the running backup finds it there
    # (dedup) and stores nothing new for it, while reusing unchanged.bin's chunks unread.
    write(root, "revived.bin", revived)
    for n in range(120):
        write(root, f"bulk/f{n:03d}.bin", os.urandom(1024 * 1024))

    running = alice.client().post("/v1/backups").json()
    wait_until(
        lambda: FileEntry.objects.filter(backup_id=running["id"], state="done", kind="file").exists(),
        timeout=60,
        interval=0.05,
        message="copying started",
    )
    prune_url = alice.client().post("/v1/prunes")["Location"]
    third = poll(alice, f"/v1/backups/{running['id']}", timeout=120)
    pruned = wait_until(
        lambda: (body := alice.client().get(prune_url).json())["state"] in ("done", "failed") and body,
        timeout=60,
        interval=0.2,
        message="prune finished",
    )
    verify = poll(alice, alice.client().post(f"/v1/backups/{third['id']}/verify")["Location"])
    restore = alice.client().post(f"/v1/backups/{third['id']}/restore", {"target": "back"}, format="json")
    restored = poll(alice, restore["Location"])

    first_slice = OutboxMessage.objects.get(idempotency_key=f"backups.prune_slice:{pruned['id']}:0")
    backup_end = Backup.objects.get(pk=third["id"]).finished_at
    assert first_slice.done_at < backup_end  # the prune ran while the backup did...
    assert pruned["swept_at"] >= backup_end.isoformat().replace("+00:00", "Z")  # ...and swept after it ended
    assert third["state"] == "done", third
    assert third["files_reused"] >= 1  # unchanged.bin, from the second backup
    assert pruned["state"] == "done", pruned
    assert pruned["chunks_deleted"] >= 1
    indexed = set(Chunk.objects.filter(retailer=alice.retailer).values_list("chunk_id", flat=True))
    assert chunk_id(gone_bytes) not in indexed  # only the deleted first backup named it
    assert chunk_id(revived) in indexed  # dead at the start of the running backup, which deduplicated against it
    assert verify["state"] == "done"
    assert verify["problems"] == []
    assert restored["state"] == "done", restored
    assert tree_snapshot(backup_dirs["restore"] / str(alice.retailer.id) / "back") == tree_snapshot(root)
    referenced = {
        chunk
        for chunks in FileEntry.objects.filter(backup__state="done").values_list("chunks", flat=True)
        for chunk in chunks
    }
    assert indexed == referenced
    assert second["state"] == "done"


@pytest.mark.timeout(120)
def test_a_copy_task_that_becomes_a_dead_letter_fails_its_backup(
    alice, backup_dirs, celery_worker, outbox_relay
) -> None:
    write(source_of(backup_dirs, alice.retailer.id), "a.bin", os.urandom(10_000))
    broken = backup_env(backup_dirs, BACKUP_STORAGE="backups.tests.full_storage.BrokenDiskStorage")
    celery_worker(["backups"], concurrency=1, extra_env=broken)
    outbox_relay()

    backup = poll(alice, alice.client().post("/v1/backups")["Location"])

    assert backup["state"] == "failed", backup
    assert backup["error_code"] == "task_failed"
    assert "Input/output error" in backup["error_message"]
    assert DeadLetter.objects.filter(task_name="backups.copy_lane").exists()
    assert OutboxMessage.objects.filter(idempotency_key=f"event:backup.failed:backup:{backup['id']}:1").exists()


@pytest.mark.faults
@pytest.mark.xdist_group("faults")
@pytest.mark.timeout(180)
def test_kill_9_mid_large_file_resumes_inside_it(alice, backup_dirs, celery_worker, outbox_relay) -> None:
    content = os.urandom(48 * 1024 * 1024)  # incompressible: a pack (and a saved offset) every ~16 MiB
    write(source_of(backup_dirs, alice.retailer.id), "large.bin", content)
    worker = celery_worker(["backups"], concurrency=1, extra_env=backup_env(backup_dirs))
    outbox_relay()

    accepted = alice.client().post("/v1/backups")
    entry = wait_until(
        lambda: (
            FileEntry.objects.filter(backup_id=accepted.json()["id"], path=b"large.bin", resume_offset__gt=0)
            .exclude(state="done")
            .first()
        ),
        timeout=90,
        interval=0.02,
        message="a pack of the large file was stored",
    )
    stored_at_kill = entry.resume_offset  # at least this much (another pack may fill before the kill lands)
    (child,) = worker.child_pids()
    worker.kill_pid(child)
    finished = poll(alice, accepted["Location"], timeout=120)
    entry.refresh_from_db()

    assert finished["state"] == "done", finished
    assert entry.sha256 == hashlib.sha256(content).hexdigest()
    assert entry.chunks == [chunk_id(data) for data in stream_chunks(io.BytesIO(content))]
    assert finished["bytes_read"] <= len(content) - stored_at_kill  # the stored part was not copied again
