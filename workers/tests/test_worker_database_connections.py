"""A worker keeps its database connection across tasks, under Django's own rules."""

from __future__ import annotations

from django.db import connection

from workers.testing import wait_until
from workers.tests import fault_tasks


def _backends() -> dict[str, int]:
    return fault_tasks.counts(fault_tasks.BACKENDS)


def _run(key: str) -> int:
    fault_tasks.database_backend.enqueue(idempotency_key=key)
    return int(wait_until(lambda: _backends().get(key), timeout=30))


def test_tasks_in_one_process_share_a_connection_and_a_dropped_one_is_replaced(celery_worker, broker_redis):
    fault_tasks.patient_redis().delete(fault_tasks.BACKENDS)
    celery_worker(["default"], concurrency=1, include=[fault_tasks.MODULE])

    first, second = _run("db-1"), _run("db-2")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [second])  # PostgreSQL restarted, or a proxy cut it
    third = _run("db-3")

    assert first == second  # no new PostgreSQL backend per task
    assert third != second  # the broken connection was noticed and replaced, and the task ran
