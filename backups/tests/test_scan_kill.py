"""kill -9 of the worker's pool process mid-scan: the walk resumes from its saved cursor and
the manifest lists every file, once."""

from __future__ import annotations

import pytest

from backups.manifest import manifest_lines
from backups.models import Backup, ScanCursor
from backups.tests.conftest import backup_env, source_of, write
from backups.tests.test_workers import poll
from workers.testing import wait_until

DIRECTORIES, FILES_EACH = 1000, 3
# A slice reads at least one directory; 1 ms slices read ~30 of these (the walk writes COPY text
# as it goes), so ~30 slices, each queued through the outbox: the kill lands mid-walk.
SLICE_ENV = {"BACKUP_SCAN_SLICE_SECONDS": "0.001"}


@pytest.mark.faults
@pytest.mark.xdist_group("faults")
@pytest.mark.timeout(180)
def test_kill_9_of_a_pool_process_mid_scan_loses_no_file(alice, backup_dirs, celery_worker, outbox_relay) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    for d in range(DIRECTORIES):
        for f in range(FILES_EACH):
            write(root, f"d{d:03d}/f{f}.txt", f"{d}-{f}".encode())
    worker = celery_worker(["backups"], concurrency=1, extra_env=backup_env(backup_dirs, **SLICE_ENV))
    outbox_relay()

    accepted = alice.client().post("/v1/backups")
    backup_id = accepted.json()["id"]
    wait_until(
        lambda: ScanCursor.objects.filter(backup_id=backup_id, slice_number__gte=5, done=False).exists(),
        timeout=60,
        interval=0.01,
        message="the walk is under way",
    )
    (child,) = worker.child_pids()
    worker.kill_pid(child)
    slices_at_kill = ScanCursor.objects.get(backup_id=backup_id).slice_number
    finished = poll(alice, accepted["Location"], timeout=120)

    assert finished["state"] == "done", finished
    assert slices_at_kill < DIRECTORIES, "the walk had finished before the kill: the test proves nothing"
    lines = list(manifest_lines(Backup.objects.get(pk=backup_id).snapshot.manifest_name))
    files = [line["path"] for line in lines if line["kind"] == "file"]
    assert len(files) == len(set(files)) == DIRECTORIES * FILES_EACH
    directories = [line["path"] for line in lines if line["kind"] == "dir"]
    assert len(directories) == len(set(directories)) == DIRECTORIES  # each slice's directories recorded once
    assert finished["files_done"] == finished["files_total"] == DIRECTORIES * (FILES_EACH + 1) + 1
