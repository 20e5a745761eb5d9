"""A real ingest worker counts every accepted event exactly once."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from analytics.models import RawEvent
from analytics.tests.factories import batch_body, event_json
from analytics.tests.probes import counted_by_sku, counted_total, wait_ingested
from workers.journal import journal_sweep
from workers.testing import wait_until

# Messages of the killed worker come back after 8 s instead of an hour. On a busy machine a batch
# can wait that long in a live worker too and run twice (harmless: the dedup), so allow more
# deliveries than production before a message counts as poison.
FAST_REDELIVERY = {
    "CELERY_VISIBILITY_TIMEOUT": "8",
    "CELERY_UNACKED_RESTORE_INTERVAL": "1",
    "CELERY_TASK_MAX_DELIVERIES": "10",
}


class JournalSweeps:
    """Run the publish-journal sweep at most every two seconds (a batch the killed worker's
    BRPOP took, but had not yet recorded as unacknowledged, comes back only through it)."""

    def __init__(self) -> None:
        self.last = 0.0
        self.republished = 0

    def __call__(self) -> bool:
        if time.monotonic() - self.last >= 2:
            self.republished += journal_sweep(min_age=5).republished
            self.last = time.monotonic()
        return True


def test_the_same_batch_posted_three_times_is_counted_once(alice, celery_worker, post_batch, wait_drained):
    now = datetime.now(UTC)
    body = batch_body([event_json(sku=f"S{i % 7}", ts=now - timedelta(seconds=i)) for i in range(40)])
    worker = celery_worker(["ingest"], concurrency=2)

    assert [post_batch(alice.publishable_key, body) for _ in range(3)] == [202, 202, 202]
    wait_ingested(worker, batches=3)
    wait_drained()

    assert RawEvent.objects.filter(retailer=alice.retailer).count() == 40
    assert counted_total(alice.retailer.id) == 40
    assert counted_by_sku(alice.retailer.id) == {f"S{n}": 6 if n < 5 else 5 for n in range(7)}


@pytest.mark.faults
@pytest.mark.xdist_group("faults")
def test_kill_9_of_the_ingest_worker_mid_stream_loses_and_duplicates_nothing(
    alice, celery_worker, post_batch, wait_drained
):
    batches, per_batch, skus = 100, 500, 50
    now = datetime.now(UTC)
    for number in range(batches):
        events = [
            event_json(sku=f"K{(number * per_batch + i) % skus}", ts=now - timedelta(seconds=i))
            for i in range(per_batch)
        ]
        assert post_batch(alice.publishable_key, batch_body(events)) == 202
    total = batches * per_batch

    worker = celery_worker(["ingest"], concurrency=2, extra_env=FAST_REDELIVERY)
    wait_until(lambda: RawEvent.objects.count() >= total // 10, timeout=120, message="no progress before the kill")
    os.kill(worker.child_pids()[0], signal.SIGKILL)  # a pool process dies mid-batch
    wait_until(lambda: RawEvent.objects.count() >= total // 3, timeout=120, message="no progress after the first kill")
    os.killpg(worker.pid, signal.SIGKILL)  # then the whole worker, main process included
    worker.wait(timeout=10)
    stored_at_kill = RawEvent.objects.count()

    celery_worker(["ingest"], concurrency=2, extra_env=FAST_REDELIVERY)
    sweep = JournalSweeps()  # what beat runs every minute, here every two seconds
    wait_until(lambda: sweep() and counted_total(alice.retailer.id) == total, timeout=120, message="events lost")
    wait_drained(timeout=60)  # every redelivery has run: a duplicate would show now
    print(f"[ingest kill -9] batches pushed back by the journal sweep: {sweep.republished}")  # noqa: T201

    assert stored_at_kill < total
    assert RawEvent.objects.count() == total
    assert counted_total(alice.retailer.id) == total
    assert counted_by_sku(alice.retailer.id) == {f"K{n}": total // skus for n in range(skus)}
