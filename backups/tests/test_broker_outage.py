"""A broker outage mid-backup, on real processes: the broker (a private Redis with its append-only
file, as the README asks of a broker) is stopped while the walk and the copy lanes run, and started
again some seconds later. The backup finishes with the manifest an uninterrupted copy of the tree
gives, no file lost, no chunk stored twice, and the worker process lives throughout.

Every step of a backup hands over to the next through the outbox (scan slice → next slice, lane →
its next generation), so the outage stops the chain at the relay: rows written meanwhile stay
pending and are published on the broker's return; messages the worker held unacknowledged come
back to it (``workers.kombu_redis_reconnect``), and find their slice or lane already moved on.
Only the work's shape is changed here (short slices, so the chain crosses the broker often); every
recovery clock (relay, reconnect, dead-consumer recovery, leases) is production's.
"""

from __future__ import annotations

import os
import time

import pytest

from backups.manifest import manifest_lines
from backups.models import Backup, FileEntry, ScanCursor
from backups.tests.conftest import backup_env, source_of, write
from backups.tests.manifest_check import expected_tree_lines, repository_stored_once
from backups.tests.test_workers import poll
from workers.testing import private_redis_server, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("faults"), pytest.mark.timeout(150)]

DIRECTORIES, SMALL_EACH = 100, 2
LARGE_FILES = 32  # of 1 MiB, incompressible: a few seconds of copying on this machine
OUTAGE_SECONDS = 3.0
SHAPE_ENV = {"BACKUP_SCAN_SLICE_SECONDS": "0.001", "BACKUP_COPY_SLICE_SECONDS": "0.5"}


def test_a_broker_stopped_mid_backup_and_restarted_loses_no_file_and_stores_no_chunk_twice(
    alice, backup_dirs, celery_worker, outbox_relay, settings
) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    for d in range(DIRECTORIES):
        for f in range(SMALL_EACH):
            write(root, f"d{d:03d}/f{f}.txt", f"{d}-{f}".encode())
    for n in range(LARGE_FILES):
        write(root, f"large/f{n:02d}.bin", os.urandom(1024 * 1024))
    with private_redis_server(persistent=True) as broker:
        settings.CELERY_BROKER_URL = broker.url  # the child processes' broker
        worker = celery_worker(["backups"], concurrency=2, extra_env=backup_env(backup_dirs, **SHAPE_ENV))
        pool_at_start = worker.child_pids()
        relay = outbox_relay()
        clicked_at = time.monotonic()
        backup_id = alice.client().post("/v1/backups").json()["id"]
        wait_until(
            lambda: FileEntry.objects.filter(backup_id=backup_id, state="done", kind="file", size__gt=0).exists(),
            timeout=60,
            interval=0.02,
            message="copying started",
        )

        broker.shutdown()
        stopped_at = time.monotonic()
        walk_done_at_stop = ScanCursor.objects.get(backup_id=backup_id).done
        done_at_stop = FileEntry.objects.filter(backup_id=backup_id, state="done", kind="file").count()
        wait_until(lambda: relay.events("outbox_relay_unavailable"), timeout=20, message="the relay saw the outage")
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped_at)))
        progress_in_outage = FileEntry.objects.filter(backup_id=backup_id, state="done", kind="file").count()
        broker.start()
        restarted_at = time.monotonic()

        finished = poll(alice, f"/v1/backups/{backup_id}", timeout=90)
        recovery_seconds = time.monotonic() - restarted_at
        worker_alive, pool_at_end = worker.is_running(), worker.child_pids()

    files_total = DIRECTORIES * SMALL_EACH + LARGE_FILES
    print(  # noqa: T201
        f"[backups, broker outage] {files_total} files; stopped {stopped_at - clicked_at:.1f} s after the click, "
        f"walk done {walk_done_at_stop}, "
        f"{done_at_stop} copied; {progress_in_outage} copied by the end of the {OUTAGE_SECONDS:.0f} s outage; "
        f"done {recovery_seconds:.1f} s after the broker returned"
    )
    assert done_at_stop < files_total, "the copy had finished before the stop: the test proves nothing"
    assert finished["state"] == "done", finished
    assert worker_alive, worker.output()[-3000:]
    assert pool_at_end == pool_at_start  # no pool process died either
    lines = list(manifest_lines(Backup.objects.get(pk=backup_id).snapshot.manifest_name))
    assert [line for line in lines if line["kind"] != "export"] == expected_tree_lines(root)
    assert [line["kind"] for line in lines].count("export") == 1
    assert repository_stored_once(alice.retailer.id, lines) == (0, 0)
    assert relay.events("outbox_relay_recovered")
