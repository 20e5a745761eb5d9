"""Verify re-reads every pack and names the files a corrupted chunk breaks."""

from __future__ import annotations

import os

from backups.models import Backup, Job, Pack
from backups.repository import pack_path, storage_reset
from backups.services import backup_start
from backups.tests.conftest import source_of, write
from backups.tests.pipeline import outbox_drain


def verify(tenant, backup: Backup) -> dict:
    response = tenant.client().post(f"/v1/backups/{backup.pk}/verify")
    assert response.status_code == 202
    assert response["Location"] == f"/v1/verifications/{response.json()['id']}"
    outbox_drain()
    return tenant.client().get(response["Location"]).json()


def test_verify_passes_a_sound_repository_and_names_the_files_of_a_corrupted_chunk(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    write(root, "a/precious.bin", os.urandom(200_000))
    write(root, "b.txt", b"small")
    backup, _ = backup_start(retailer_id=alice.retailer.id)
    outbox_drain()
    backup.refresh_from_db()
    assert backup.state == Backup.State.DONE

    sound = verify(alice, backup)
    pack = Pack.objects.get(retailer=alice.retailer)  # all chunks fit one pack
    stored = backup_dirs["repository"] / pack_path(alice.retailer.id, pack.name)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    stored.write_bytes(bytes(data))
    storage_reset()  # forget the decrypted pack this process keeps
    corrupt = verify(alice, backup)

    assert sound["state"] == "done"
    assert sound["problems"] == []
    assert sound["items_done"] == 1
    assert corrupt["state"] == "failed"
    assert corrupt["error_code"] == "corrupt_chunks"
    broken = {file["path"] for problem in corrupt["problems"] for file in problem["files"]}
    assert broken == {"a/precious.bin", "b.txt"}  # the catalog export is empty: no chunk
    assert Job.objects.get(pk=corrupt["id"]).state == Job.State.FAILED
