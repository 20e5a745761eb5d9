"""A real ingest worker counts every accepted event exactly once."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta

import pytest

from analytics.models import RawEvent
from analytics.tests.factories import batch_body, event_json
from analytics.tests.probes import counted_by_sku, counted_total, wait_ingested
from workers.testing import wait_until


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
    alice, celery_worker, post_batch, wait_drained, journal_sweeps
):
    """With production's timeouts and sweeps: the pool child's batch is rejected back to its
    queue at once; the whole worker's come back through dead-consumer recovery (within 45 s),
    and one its ``BRPOP`` took but kombu never recorded through beat's journal sweep."""
    batches, per_batch, skus = 100, 500, 50
    now = datetime.now(UTC)
    for number in range(batches):
        events = [
            event_json(sku=f"K{(number * per_batch + i) % skus}", ts=now - timedelta(seconds=i))
            for i in range(per_batch)
        ]
        assert post_batch(alice.publishable_key, batch_body(events)) == 202
    total = batches * per_batch

    worker = celery_worker(["ingest"], concurrency=2)
    wait_until(lambda: RawEvent.objects.count() >= total // 10, timeout=120, message="no progress before the kill")
    os.kill(worker.child_pids()[0], signal.SIGKILL)  # a pool process dies mid-batch
    wait_until(lambda: RawEvent.objects.count() >= total // 3, timeout=120, message="no progress after the first kill")
    os.killpg(worker.pid, signal.SIGKILL)  # then the whole worker, main process included
    worker.wait(timeout=10)
    stored_at_kill = RawEvent.objects.count()

    celery_worker(["ingest"], concurrency=2)
    wait_until(lambda: counted_total(alice.retailer.id) == total, timeout=120, message="events lost")
    wait_drained(timeout=60)  # every redelivery has run: a duplicate would show now
    print(f"[ingest kill -9] batches pushed back by the journal sweep: {journal_sweeps()}")  # noqa: T201

    assert stored_at_kill < total
    assert RawEvent.objects.count() == total
    assert counted_total(alice.retailer.id) == total
    assert counted_by_sku(alice.retailer.id) == {f"K{n}": total // skus for n in range(skus)}
