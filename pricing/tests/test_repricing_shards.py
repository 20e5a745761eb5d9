"""Repricing jobs: shard split, idempotent shards, the last shard closes the job; real workers + relay."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing.models import PriceHistory, PriceSnapshot, RepricingJob, RepricingShard
from pricing.services import demand_signals_set, products_bulk_upsert, repricing_shard_run, rule_create
from pricing.services.repricing import SHARD_SIZE
from pricing.tests.conftest import PRODUCT, daily_limit_off, shards_run_all
from workers.models import OutboxMessage
from workers.testing import wait_until

DEMAND_UP = {"name": "Demand", "params": {"sensitivity": "1", "max_multiplier": "2"}}
INVENTORY_UP = {"name": "All scarce", "params": {"scarce_at_or_below": 1000, "scarcity_raise_percent": "10"}}


def _catalog(retailer_id: int, count: int) -> None:
    rows = [{**PRODUCT, "sku": f"SKU-{n:05d}", "base_price": "10.00"} for n in range(count)]
    products_bulk_upsert(retailer_id=retailer_id, rows=rows, actor="test")


def test_rule_change_answers_202_with_a_job_split_into_shards(alice) -> None:
    _catalog(alice.retailer.id, 450)
    shards_run_all()
    response = alice.client().post("/v1/rules", {"kind": "inventory", **INVENTORY_UP}, format="json")
    assert response.status_code == 202
    job_url = response["Location"]
    assert job_url == response.json()["job"]["url"]
    job = alice.client().get(job_url).json()
    assert (job["status"], job["shards_total"], job["shards_done"], job["skus_total"]) == ("running", 3, 0, 450)
    shards = RepricingShard.objects.filter(job_id=job["id"]).order_by("index")
    assert [len(s.skus) for s in shards] == [SHARD_SIZE, SHARD_SIZE, 50]
    tasks = OutboxMessage.objects.filter(task_name="pricing.shard_run", kwargs__shard_id__in=[s.id for s in shards])
    assert tasks.count() == 3

    assert shards_run_all() == 450
    job = alice.client().get(job_url).json()
    assert (job["status"], job["shards_done"], job["skus_changed"]) == ("done", 3, 450)
    assert job["finished_at"]
    assert set(PriceSnapshot.objects.values_list("effective_price", flat=True)) == {Decimal("11.00")}


def test_a_shard_run_twice_changes_nothing_the_second_time(alice) -> None:
    _catalog(alice.retailer.id, 10)
    shards_run_all()
    rule_create(retailer_id=alice.retailer.id, kind="inventory", values=INVENTORY_UP, actor="test")
    shard = RepricingShard.objects.get(status="pending")
    assert repricing_shard_run(shard_id=shard.id) == 10
    history = PriceHistory.objects.count()
    announcements = OutboxMessage.objects.filter(task_name="workers.event_dispatch").count()
    assert repricing_shard_run(shard_id=shard.id) == 0
    job = RepricingJob.objects.get(pk=shard.job_id)
    assert (job.shards_done, job.skus_changed, job.status) == (1, 10, "done")
    assert PriceHistory.objects.count() == history
    assert OutboxMessage.objects.filter(task_name="workers.event_dispatch").count() == announcements


def test_every_price_change_appends_history_and_announces_its_version(alice) -> None:
    _catalog(alice.retailer.id, 3)
    shards_run_all()
    rule_create(retailer_id=alice.retailer.id, kind="inventory", values=INVENTORY_UP, actor="test")
    shards_run_all()
    history = list(PriceHistory.objects.filter(sku="SKU-00000").order_by("version").values_list("price", "version"))
    assert history == [(Decimal("10.00"), 1), (Decimal("11.00"), 2)]
    events = OutboxMessage.objects.filter(task_name="workers.event_dispatch", kwargs__topic="prices.changed")
    changes = sorted(
        (sku["version"], sku["old_price"], sku["new_price"])
        for event in events
        for sku in event.kwargs["payload"]["skus"]
        if sku["sku"] == "SKU-00000"
    )
    assert changes == [(1, None, "10.00"), (2, "10.00", "11.00")]
    assert not OutboxMessage.objects.filter(kwargs__topic="price.changed").exists()


def test_job_of_an_empty_catalog_is_done_at_once(alice) -> None:
    change = rule_create(retailer_id=alice.retailer.id, kind="inventory", values=INVENTORY_UP, actor="test")
    assert (change.job.status, change.job.shards_total) == ("done", 0)


@pytest.mark.timeout(120)
def test_catalog_wide_repricing_runs_on_real_workers(alice, celery_worker, outbox_relay) -> None:
    """The relay publishes one task per shard; two worker processes run them in parallel."""
    daily_limit_off(alice)  # the rule's whole effect, beyond the default 20 % a day
    _catalog(alice.retailer.id, 450)
    celery_worker(["pricing", "default"], concurrency=2)
    outbox_relay()
    first = RepricingJob.objects.get()
    wait_until(lambda: RepricingJob.objects.get(pk=first.pk).status == "done", timeout=60, message="catalog job")

    change = rule_create(retailer_id=alice.retailer.id, kind="demand", values=DEMAND_UP, actor="test")
    demand_signals_set(retailer_id=alice.retailer.id, signals={"SKU-00001": Decimal("1.5")}, actor="test")
    wait_until(lambda: RepricingJob.objects.get(pk=change.job.pk).status == "done", timeout=60, message="rule job")
    job = RepricingJob.objects.get(pk=change.job.pk)
    assert (job.shards_total, job.shards_done) == (3, 3)
    assert set(RepricingShard.objects.filter(job=job).values_list("status", flat=True)) == {"done"}
    assert PriceSnapshot.objects.get(sku="SKU-00001").effective_price == Decimal("15.00")
    assert PriceHistory.objects.filter(sku="SKU-00001").count() == 2
    duplicated = PriceHistory.objects.values("sku", "version").order_by().distinct().count()
    assert duplicated == PriceHistory.objects.count()


def test_rule_post_with_an_idempotency_key_creates_one_rule(alice) -> None:
    body = {"kind": "inventory", **INVENTORY_UP}
    first = alice.client().post("/v1/rules", body, format="json", HTTP_IDEMPOTENCY_KEY="rule-1")
    again = alice.client().post("/v1/rules", body, format="json", HTTP_IDEMPOTENCY_KEY="rule-1")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"] == first.json()["job"]["url"]
    assert again["Content-Type"] == first["Content-Type"] == "application/json"
    assert RepricingJob.objects.count() == 1
    other = alice.client().post("/v1/rules", {**body, "name": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="rule-1")
    assert other.status_code == 422
