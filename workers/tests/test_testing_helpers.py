"""The test helpers start real workers, see them work, and stop them by PID."""

from __future__ import annotations

import os

import pytest

from workers.testing import ProcessTimeoutError, wait_until
from workers.tests import fault_tasks


def test_started_worker_runs_a_published_task_and_stops_gracefully(celery_worker, effects):
    worker = celery_worker(["default"], concurrency=2, include=[fault_tasks.MODULE])
    assert len(worker.child_pids()) == 2

    fault_tasks.record.enqueue(idempotency_key="k1")

    wait_until(lambda: effects.executions().get("k1") == 1, timeout=15)
    children = worker.child_pids()
    worker.stop()
    assert not worker.is_running()
    assert "Warm shutdown" in worker.output()
    wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in children), timeout=5)


def test_wait_until_fails_loudly_when_the_condition_never_holds():
    with pytest.raises(ProcessTimeoutError, match="never"):
        wait_until(lambda: False, timeout=0.2, message="never")
