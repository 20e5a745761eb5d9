"""Celery entry points of pricing (thin: load by id, call a service)."""

from __future__ import annotations

from pricing.services.repricing import repricing_shard_run, schedule_boundaries_reprice
from pricing.snapshots import snapshots_cache_resync
from workers.reliable import reliable_task
from workers.routing import Queue


@reliable_task(name="pricing.shard_run", queue=Queue.PRICING, soft_time_limit=120, time_limit=150)
def shard_run(*, shard_id: int, idempotency_key: str) -> int:
    """Recompute one repricing shard (<= 200 SKUs, ~0.1-1 s). Idempotent: a done shard does nothing."""
    return repricing_shard_run(shard_id=shard_id)


@reliable_task(name="pricing.schedule_boundaries", queue=Queue.PRICING, soft_time_limit=50, time_limit=60)
def schedule_boundaries(*, idempotency_key: str) -> int:
    """Every minute (beat): start repricing jobs for snapshots past a schedule boundary."""
    return len(schedule_boundaries_reprice())


@reliable_task(name="pricing.snapshots_resync", queue=Queue.PRICING, soft_time_limit=50, time_limit=60)
def snapshots_resync(*, idempotency_key: str) -> int:
    """Every minute (beat): copy recently computed snapshots that Redis may have missed. Idempotent."""
    return snapshots_cache_resync()
