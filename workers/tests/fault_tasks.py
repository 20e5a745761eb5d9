"""Tasks used only by the workers tests; worker subprocesses load them with ``include``.

Effects are counted where the test can read them: ``effect_counts`` (a hash in
the cache Redis) counts every execution of a body, so a duplicate shows as 2.
"""

from __future__ import annotations

from app.redis_client import cache_key, cache_redis
from workers.reliable import reliable_task
from workers.routing import Queue

MODULE = __name__
EXECUTIONS = "executions"


def executions() -> dict[str, int]:
    """Executions per idempotency key, as recorded by the tasks in this module."""
    raw = cache_redis().hgetall(cache_key(EXECUTIONS))
    return {key.decode(): int(value) for key, value in raw.items()}


@reliable_task(name="workers_tests.record", queue=Queue.DEFAULT, soft_time_limit=10, time_limit=15)
def record(*, idempotency_key: str) -> None:
    cache_redis().hincrby(cache_key(EXECUTIONS), idempotency_key, 1)
