"""The baseline of ``bench/ingest_bench.py``: a trivial task on the same base, queue and worker.

It does nothing, so its rate is the cost of one delivery (publish, fetch, the
reliable base's bookkeeping, acknowledgement). An ingest batch pays that once
for 50 events; the benchmark checks that batching pays off.
"""

from __future__ import annotations

from workers.reliable import reliable_task
from workers.routing import Queue

BARE_TASK = "bench.ingest_bare"


@reliable_task(name=BARE_TASK, queue=Queue.INGEST, soft_time_limit=10, time_limit=15)
def ingest_bare(*, idempotency_key: str) -> None:
    """Nothing: the baseline delivery."""
