"""A pool process killed mid-shard: the shard runs again, nothing is lost or counted twice."""

from __future__ import annotations

import time

import pytest
from django.db.models import Count

from pricing.models import PriceHistory, PriceSnapshot, RepricingJob
from pricing.services import products_bulk_upsert, rule_create
from pricing.tests.conftest import PRODUCT
from workers.kombu_redis import UNACKED_KEY
from workers.testing import wait_until

CATALOG = 1000  # five shards: the kill lands while the first one runs
SCARCE = {"name": "All scarce", "params": {"scarce_at_or_below": 1000, "scarcity_raise_percent": "10"}}


def _done(job_id: int) -> bool:
    return RepricingJob.objects.get(pk=job_id).status == "done"


@pytest.mark.faults
@pytest.mark.xdist_group("faults")
@pytest.mark.timeout(240)
def test_kill_9_of_a_pool_process_mid_shard_loses_and_doubles_nothing(
    alice, celery_worker, outbox_relay, broker_redis
) -> None:
    """With production's timeouts: the killed child's shard is rejected back to its queue at
    once (``task_reject_on_worker_lost``) and runs again behind the shard's barrier."""
    rule_create(retailer_id=alice.retailer.id, kind="inventory", values=SCARCE, actor="test")
    worker = celery_worker(["pricing", "default"], concurrency=1)
    outbox_relay()
    rows = [{**PRODUCT, "sku": f"SKU-{n:05d}", "base_price": "10.00"} for n in range(CATALOG)]
    job = products_bulk_upsert(retailer_id=alice.retailer.id, rows=rows, actor="test").job
    assert job is not None
    wait_until(lambda: worker.events("task_started"), timeout=30, message="a shard started")
    (child,) = worker.child_pids()
    worker.kill_pid(child)
    killed_with = RepricingJob.objects.get(pk=job.pk).shards_done

    wait_until(lambda: _done(job.pk), timeout=180, message="job finished after the kill")
    wait_until(
        lambda: (
            not any(broker_redis.llen(queue) for queue in ("pricing", "default")) and not broker_redis.hlen(UNACKED_KEY)
        ),
        timeout=60,
        message="the broker drained: no copy of a shard left to run",
    )
    time.sleep(1)  # a copy taken just before the check finishes its run
    job.refresh_from_db()
    changed_prices = PriceSnapshot.objects.filter(effective_price=11).count()
    history = PriceHistory.objects.values("sku").annotate(rows=Count("id"))
    lost = CATALOG - changed_prices
    duplicated = sum(row["rows"] - 1 for row in history if row["rows"] > 1)
    print(f"\n[pricing kill -9 mid-shard] lost={lost} duplicated={duplicated} shards_done_at_kill={killed_with}")  # noqa: T201 - the fault report
    assert killed_with < job.shards_total
    assert "WorkerLostError" in worker.output()  # the kill hit a running shard, which ran again
    assert (lost, duplicated) == (0, 0)
    assert (job.shards_done, job.skus_changed) == (job.shards_total, CATALOG)
