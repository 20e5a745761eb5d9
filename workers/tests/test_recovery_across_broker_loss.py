"""A worker that lost its broker connection under a running task keeps vouching for it.

Celery lets the tasks running at a broker connection loss finish; their worker acknowledges
or requeues them through the channel of the lost connection once it has reconnected
(``workers.kombu_redis_reconnect``). That channel is closed, but its messages are still held:
if the worker stopped refreshing its liveness key, dead-consumer recovery took the live task
for dead and ran it a second time (seen as ``dead_consumer_messages_restored`` right after
each broker stop of the analytics five-stop test). Real worker, private persistent broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import workers.broker
from workers import publish
from workers.testing import PrivateRedis, private_redis_server, wait_until
from workers.tests import fault_tasks
from workers.tests.conftest import Effects, fault_report

# The shortest liveness the recovery accepts, swept every second: the lost connection's key
# lapses ~3 s after the stop, well inside the task's run.
RECOVERY_ENV = {"RECOVERY_LIVENESS_TTL_SECONDS": "3", "RECOVERY_SWEEP_INTERVAL_SECONDS": "1"}
TASK_MS = 9000  # three TTLs past the stop; under the test task's soft time limit
OUTAGE_SECONDS = 2.0  # the broker is still away when Celery closes the lost channel


@pytest.fixture
def broker(settings, transactional_db, monkeypatch) -> Iterator[PrivateRedis]:
    with private_redis_server(persistent=True) as server:
        settings.CELERY_BROKER_URL = server.url  # this process's publish and the worker's
        publish.web_publish_reset()
        monkeypatch.setattr(workers.broker, "_client", None)
        yield server
    publish.web_publish_reset()


@pytest.mark.faults
@pytest.mark.xdist_group("faults")
def test_a_task_running_across_a_broker_stop_is_not_restored_to_run_again(broker, celery_worker, effects: Effects):
    worker = celery_worker(["default"], concurrency=1, include=[fault_tasks.MODULE], extra_env=RECOVERY_ENV)
    fault_tasks.increment.enqueue(idempotency_key="across", sleep_ms=TASK_MS)
    wait_until(lambda: "across" in effects.running().values(), timeout=30, interval=0.05)

    broker.shutdown()
    time.sleep(OUTAGE_SECONDS)
    broker.start()
    wait_until(lambda: effects.applied().get("across"), timeout=30, interval=0.1)
    time.sleep(3 * float(RECOVERY_ENV["RECOVERY_LIVENESS_TTL_SECONDS"]))  # a restored copy would run now

    counts = fault_report("task across a broker stop", effects.report(["across"]))
    assert worker.is_running(), worker.output()[-3000:]
    assert worker.events("dead_consumer_messages_restored") == []
    assert effects.executions() == {"across": 1}
    assert counts == {"lost": 0, "duplicated": 0, "redeliveries": 0}
