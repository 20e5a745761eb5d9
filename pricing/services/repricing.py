"""Repricing jobs: scatter a recomputation over shards, run each once, close the job once.

A job and its shard rows (at most ``SHARD_SIZE`` SKUs each) are created in the
transaction of the change that needs them, with one outbox row per shard, so
the work is durable the moment the change commits. The relay publishes
``pricing.shard_run`` tasks on the ``pricing`` queue; they run in parallel.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F, Min
from django.utils import timezone

from pricing.models import PriceSnapshot, Product, RepricingJob, RepricingShard
from pricing.services.refresh import snapshots_refresh
from workers.outbox import outbox_enqueue_task

# 200 SKUs recompute in ~0.1 s on one core (pipeline + one bulk UPDATE), short enough
# that a redelivered shard costs little and many shards run in parallel.
SHARD_SIZE = 200
SHARD_TASK = "pricing.shard_run"


def repricing_job_create(
    *, retailer_id: int, reason: str, skus: list[str] | None = None, dedup_key: str | None = None
) -> RepricingJob:
    """Create a job over ``skus`` (None: the whole catalog). Call inside the change's transaction.

    With ``dedup_key``, a second call with the same key returns the first job.
    """
    if dedup_key is not None:
        existing = RepricingJob.objects.filter(dedup_key=dedup_key).first()
        if existing is not None:
            return existing
    if skus is None:
        skus = list(Product.objects.filter(retailer_id=retailer_id).order_by("sku").values_list("sku", flat=True))
    else:
        skus = sorted(set(skus))
    chunks = [skus[start : start + SHARD_SIZE] for start in range(0, len(skus), SHARD_SIZE)]
    try:
        with transaction.atomic():
            job = RepricingJob.objects.create(
                retailer_id=retailer_id,
                reason=reason[:200],
                shards_total=len(chunks),
                skus_total=len(skus),
                dedup_key=dedup_key,
                status=RepricingJob.Status.RUNNING if chunks else RepricingJob.Status.DONE,
                finished_at=None if chunks else timezone.now(),
            )
    except IntegrityError:
        return RepricingJob.objects.get(dedup_key=dedup_key)
    shards = RepricingShard.objects.bulk_create(
        [RepricingShard(job=job, index=index, skus=chunk) for index, chunk in enumerate(chunks)]
    )
    for shard in shards:
        outbox_enqueue_task(
            task_name=SHARD_TASK, kwargs={"shard_id": shard.id}, idempotency_key=f"{SHARD_TASK}:{shard.id}"
        )
    return job


@transaction.atomic
def repricing_shard_run(*, shard_id: int) -> int:
    """Recompute one shard's SKUs and count the changes; returns the SKUs changed.

    Idempotent: the shard row is locked and a shard already done does nothing, so a
    redelivered task changes nothing twice. The shard's snapshots, its count and the
    job's counters commit together; the shard that brings ``shards_done`` to
    ``shards_total`` closes the job with a conditional UPDATE that matches once.
    """
    shard = RepricingShard.objects.select_for_update().select_related("job").filter(pk=shard_id).first()
    if shard is None or shard.status == RepricingShard.Status.DONE:
        return 0
    job = shard.job
    result = snapshots_refresh(retailer_id=job.retailer_id, skus=list(shard.skus), reason=job.reason)
    changed = len(result.changed)
    now = timezone.now()
    RepricingShard.objects.filter(pk=shard.pk).update(
        status=RepricingShard.Status.DONE, skus_changed=changed, finished_at=now
    )
    RepricingJob.objects.filter(pk=job.pk).update(
        shards_done=F("shards_done") + 1, skus_changed=F("skus_changed") + changed
    )
    RepricingJob.objects.filter(pk=job.pk, status=RepricingJob.Status.RUNNING, shards_done=F("shards_total")).update(
        status=RepricingJob.Status.DONE, finished_at=now
    )
    return changed


def schedule_boundaries_reprice(*, now: datetime | None = None) -> list[RepricingJob]:
    """Reprice every snapshot whose schedule window (or daily change limit) has ended.

    Beat calls this every minute. One job per retailer, deduplicated on the earliest
    expired boundary, so a beat that fires twice (or a slow job) creates no second job.
    """
    moment = now or timezone.now()
    expired = (
        PriceSnapshot.objects.filter(valid_until__lte=moment, active=True)
        .values("retailer_id")
        .annotate(first=Min("valid_until"))
    )
    jobs = []
    for row in expired:
        retailer_id, first = row["retailer_id"], row["first"]
        skus = list(
            PriceSnapshot.objects.filter(retailer_id=retailer_id, valid_until__lte=moment, active=True).values_list(
                "sku", flat=True
            )
        )
        with transaction.atomic():
            jobs.append(
                repricing_job_create(
                    retailer_id=retailer_id,
                    skus=skus,
                    reason="schedule boundary",
                    dedup_key=f"boundary:{retailer_id}:{first.isoformat()}",
                )
            )
    return jobs
