"""A large file whose copy stops midway (a crash) resumes after the part already stored: that part
is only hashed again, and the chunks, SHA-256 and bytes are those of an uninterrupted copy."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from backups import repository
from backups.chunking import chunk_id, stream_chunks
from backups.copying import copy_lane_run
from backups.models import Backup, FileEntry
from backups.repository import storage_reset
from backups.services import backup_start
from backups.tests.conftest import source_of, write
from backups.tests.full_storage import FailingDiskStorage
from backups.tests.pipeline import outbox_drain

PACK_BYTES = 2 * 1024 * 1024  # packs of 2 MiB in this test (16 MiB in production): a few per file
SIZE = 12 * 1024 * 1024  # random (incompressible): ~5 packs


def test_a_large_file_resumes_after_the_packs_stored_before_the_stop(alice, backup_dirs, settings, monkeypatch):
    content = os.urandom(SIZE)
    write(source_of(backup_dirs, alice.retailer.id), "large.bin", content)
    settings.BACKUP_STORAGE = "backups.tests.full_storage.FailingDiskStorage"
    settings.BACKUP_COPY_LANES = 1
    storage_reset()
    monkeypatch.setattr(repository, "PACK_TARGET_BYTES", PACK_BYTES)
    monkeypatch.setattr(FailingDiskStorage, "limit", SIZE // 2)  # the copy stops about halfway
    backup, _ = backup_start(retailer_id=alice.retailer.id)
    outbox_drain(only=("backups.scan_slice",))
    with pytest.raises(OSError, match="Input/output error"):
        outbox_drain()
    entry = FileEntry.objects.get(backup=backup, path=b"large.bin")
    stored_before = entry.resume_offset

    monkeypatch.setattr(FailingDiskStorage, "limit", 10 * SIZE)  # the disk is back
    # The lane failed rather than died: it gave its batch (the file and the catalog export) back,
    # so the redelivered lane takes it at once instead of after the lease.
    given_back = FileEntry.objects.filter(backup=backup, state="pending", claim_token="").count()
    copy_lane_run(backup_id=backup.pk, lane="again", generation=0)  # what the redelivered lane runs
    outbox_drain()

    backup.refresh_from_db()
    entry.refresh_from_db()
    download = alice.client().get(f"/v1/backups/{backup.pk}/files/large.bin")
    assert PACK_BYTES <= stored_before < SIZE // 2
    assert given_back == 2
    assert backup.state == Backup.State.DONE, backup.error_message
    assert backup.bytes_read == SIZE - stored_before  # the stored part was hashed, not copied again
    assert entry.sha256 == hashlib.sha256(content).hexdigest()
    assert entry.chunks == [chunk_id(data) for data in stream_chunks(io.BytesIO(content))]
    assert b"".join(download.streaming_content) == content
