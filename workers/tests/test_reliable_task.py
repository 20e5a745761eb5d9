"""The reliable base on a real worker: retries, dead letters, replay, duplicates, logs."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.utils import timezone

from app.celery import celery_app
from app.request_context import bind_request_id, reset_request_id
from workers.models import DeadLetter, OutboxMessage
from workers.relay import relay_batch
from workers.services import DeadLetterNotReplayableError, deadletter_replay
from workers.testing import private_redis_server, wait_until
from workers.tests import fault_tasks
from workers.tests.conftest import fault_report


def _at(event: dict) -> float:
    return datetime.fromisoformat(event["timestamp"]).timestamp()


def test_transient_failures_retry_with_growing_backoff_and_succeed_on_try_three(celery_worker, effects):
    worker = celery_worker(["default"], include=[fault_tasks.MODULE])

    fault_tasks.flaky.enqueue(idempotency_key="flaky-1", failures=2)

    wait_until(lambda: effects.applied().get("flaky-1") == 1, timeout=20)
    wait_until(lambda: worker.events("task_succeeded"), timeout=5)
    retries = worker.events("task_retry")
    ceilings = [event["ceiling_s"] for event in retries]
    assert ceilings == [0.3, 0.6]  # base 0.3 s, doubling
    assert [event["countdown_s"] for event in retries] == ceilings  # the test injects jitter = 1.0
    starts = worker.events("task_started")
    assert [event["retries"] for event in starts] == [0, 1, 2]
    gaps = [_at(later) - _at(earlier) for earlier, later in itertools.pairwise(starts)]
    assert gaps[0] >= 0.3
    assert gaps[1] >= 0.6
    assert effects.executions()["flaky-1"] == 3
    assert not DeadLetter.objects.exists()
    counts = fault_report("3: two transient failures, then success", effects.report(["flaky-1"]))
    assert counts == {"lost": 0, "duplicated": 0, "redeliveries": 2}  # the two retries


def test_task_that_always_fails_becomes_one_dead_letter_and_its_replay_applies_once(celery_worker, effects):
    celery_worker(["default"], include=[fault_tasks.MODULE])

    fault_tasks.broken_until_fixed.enqueue(idempotency_key="order-7")

    letter = wait_until(lambda: DeadLetter.objects.filter(idempotency_key="order-7").first(), timeout=20)
    assert letter.task_name == "workers_tests.broken_until_fixed"
    assert letter.attempts == 3  # the first try and max_retries=2
    assert letter.exception.startswith("TransientError: dependency still down")
    assert "Traceback" in letter.traceback
    assert letter.kwargs == {"idempotency_key": "order-7"}
    assert effects.executions()["order-7"] == 3
    assert "order-7" not in effects.applied()

    fault_tasks.patient_redis().sadd(fault_tasks.FIXED, "order-7")  # the operator fixes the cause
    deadletter_replay(deadletter_id=letter.pk, actor="test")
    assert relay_batch() == 1

    wait_until(lambda: effects.applied().get("order-7") == 1, timeout=20)
    replay_row = OutboxMessage.objects.get(idempotency_key=f"replay:{letter.pk}:1")
    wait_until(lambda: OutboxMessage.objects.get(pk=replay_row.pk).status == OutboxMessage.Status.DONE, timeout=10)
    with pytest.raises(DeadLetterNotReplayableError):
        deadletter_replay(deadletter_id=letter.pk, actor="test")

    fault_tasks.broken_until_fixed.enqueue(idempotency_key="order-7")  # a late duplicate of the original
    wait_until(lambda: effects.executions()["order-7"] == 5, timeout=20)
    assert effects.applied()["order-7"] == 1
    assert DeadLetter.objects.count() == 1
    counts = fault_report("3: always fails, dead letter, replay, late duplicate", effects.report(["order-7"]))
    assert counts == {"lost": 0, "duplicated": 0, "redeliveries": 4}  # 2 retries, the replay, the duplicate


def test_permanent_error_is_not_retried(celery_worker, effects):
    celery_worker(["default"], include=[fault_tasks.MODULE])

    fault_tasks.rejects_input.enqueue(idempotency_key="bad-1", retailer_id=42)

    letter = wait_until(lambda: DeadLetter.objects.filter(idempotency_key="bad-1").first(), timeout=20)
    assert letter.attempts == 1
    assert letter.retailer_id == 42
    assert letter.exception == "PermanentError: remote answered 400: bad sku"
    assert effects.executions()["bad-1"] == 1


def test_same_message_published_twice_applies_once(celery_worker, effects):
    celery_worker(["default"], concurrency=2, include=[fault_tasks.MODULE])

    fault_tasks.increment.enqueue(idempotency_key="evt-1")
    fault_tasks.increment.enqueue(idempotency_key="evt-1")

    wait_until(lambda: effects.executions().get("evt-1") == 2, timeout=20)
    wait_until(lambda: effects.applied().get("evt-1"), timeout=5)
    counts = fault_report("4: same message published twice", effects.report(["evt-1"]))
    assert counts == {"lost": 0, "duplicated": 0, "redeliveries": 1}


@pytest.mark.faults
@pytest.mark.timeout(120)
def test_a_retry_the_broker_refuses_to_publish_is_requeued_by_the_same_worker_once_it_can(
    settings, celery_worker, effects
):
    """Celery answers a retry it could not publish with ``Reject(requeue=False)``: the message
    was acknowledged away and its work lost. Here the broker answers the retry's LPUSH with
    OOM (it still takes the deletions of an ack); then it refuses the requeue too, which
    used to end the worker. The message must stay the broker's and run once memory is back,
    on the same worker."""
    with private_redis_server() as broker:
        settings.CELERY_BROKER_URL = broker.url
        client = redis.Redis.from_url(broker.url)
        client.config_set("maxmemory-policy", "noeviction")
        worker = celery_worker(["default"], include=[fault_tasks.MODULE])
        with celery_app.connection_for_write(broker.url) as connection:
            fault_tasks.fills_the_broker.apply_async(kwargs={"idempotency_key": "oom-1"}, connection=connection)
        wait_until(lambda: effects.executions().get("oom-1") == 1, timeout=20)
        time.sleep(1.5)  # the run fails, its retry is refused, the main process rejects while the broker is full
        client.config_set("maxmemory", "0")
        wait_until(lambda: effects.applied().get("oom-1") == 1, timeout=30)
        assert worker.is_running(), worker.output()[-3000:]
    assert effects.executions()["oom-1"] == 2
    assert worker.events("task_retry_unpublished")
    assert worker.events("requeue_refused")


def test_a_delivery_count_the_broker_refuses_runs_the_message_instead_of_dead_lettering_it(
    celery_worker, effects, broker_redis
):
    """A redelivered message is counted in the broker Redis before it runs; an error reply
    there (here WRONGTYPE; in production a broker going away) made a dead letter of a
    message that never ran."""
    worker = celery_worker(["default"], include=[fault_tasks.MODULE])
    broker_redis.hset("sf:deliveries:counted-elsewhere:0", "not", "a counter")

    fault_tasks.increment.apply_async(
        kwargs={"idempotency_key": "evt-uncounted"}, task_id="counted-elsewhere", headers={"redelivered": True}
    )

    wait_until(lambda: effects.applied().get("evt-uncounted") == 1, timeout=20)
    assert worker.events("delivery_count_unavailable")
    assert not DeadLetter.objects.exists()


def test_message_without_idempotency_key_becomes_a_dead_letter(celery_worker, effects):
    celery_worker(["default"], include=[fault_tasks.MODULE])

    celery_app.send_task("workers_tests.record", kwargs={}, queue="default")

    letter = wait_until(lambda: DeadLetter.objects.first(), timeout=20)
    assert "without an idempotency_key" in letter.exception
    assert effects.executions() == {}


def test_task_log_lines_carry_key_retailer_duration_and_the_publishing_request_id(celery_worker, effects):
    worker = celery_worker(["default"], include=[fault_tasks.MODULE])
    token = bind_request_id("req-abc-123")
    try:
        fault_tasks.rejects_input.enqueue(idempotency_key="logged-1", retailer_id=7)
        fault_tasks.increment.enqueue(idempotency_key="logged-2", retailer_id=7)
    finally:
        reset_request_id(token)

    wait_until(lambda: worker.events("task_succeeded") and worker.events("task_dead_lettered"), timeout=20)
    started = worker.events("task_started")
    succeeded = worker.events("task_succeeded")[0]
    assert {event["idempotency_key"] for event in started} == {"logged-1", "logged-2"}
    assert all(event["request_id"] == "req-abc-123" and event["retailer_id"] == 7 for event in started)
    assert succeeded["idempotency_key"] == "logged-2"
    assert succeeded["duration_ms"] > 0
    assert succeeded["task_id"]
    assert succeeded["task"] == "workers_tests.increment"
    failed = worker.events("task_dead_lettered")[0]
    assert failed["idempotency_key"] == "logged-1"
    assert failed["retailer_id"] == 7
    assert failed["task_id"]
    assert failed["request_id"] == "req-abc-123"
    assert failed["duration_ms"] >= 0


def test_replay_that_hits_its_hard_time_limit_is_recorded_failed_and_not_published_again(celery_worker, effects):
    worker = celery_worker(["default"], include=[fault_tasks.MODULE])
    fault_tasks.hangs.enqueue(idempotency_key="stuck-twice")
    letter = wait_until(lambda: DeadLetter.objects.filter(idempotency_key="stuck-twice").first(), timeout=30)

    token = bind_request_id("req-replay-stuck")
    try:
        deadletter_replay(deadletter_id=letter.pk, actor="test")
    finally:
        reset_request_id(token)
    assert relay_batch() == 1

    replay_row = OutboxMessage.objects.get(idempotency_key=f"replay:{letter.pk}:1")
    wait_until(lambda: len(worker.events("task_dead_lettered")) == 2, timeout=30)
    replay_row.refresh_from_db()
    letter.refresh_from_db()
    assert replay_row.status == OutboxMessage.Status.FAILED
    assert (letter.status, letter.failures, letter.attempts) == (DeadLetter.Status.OPEN, 2, 2)
    OutboxMessage.objects.update(next_publish_at=timezone.now())  # due now, were it still open
    assert relay_batch() == 0
    timed_out = worker.events("task_dead_lettered")
    assert all(line["error"].startswith("TimeLimitExceeded") for line in timed_out)
    assert all(line["duration_ms"] >= 2000 for line in timed_out)  # hangs: hard limit 2 s
    assert [line["request_id"] for line in timed_out] == [None, "req-replay-stuck"]
    assert effects.executions()["stuck-twice"] == 2


def test_countdown_longer_than_half_the_visibility_timeout_is_refused(settings):
    settings.CELERY_VISIBILITY_TIMEOUT = 100
    with pytest.raises(ValueError, match="half the visibility timeout"):
        fault_tasks.record.apply_async(kwargs={"idempotency_key": "late"}, countdown=51)


@pytest.mark.parametrize(
    "eta",
    [
        pytest.param(lambda: datetime.now(UTC) + timedelta(seconds=60), id="aware"),
        pytest.param(lambda: datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=60), id="naive-utc"),
        pytest.param(lambda: (datetime.now(UTC) + timedelta(seconds=60)).isoformat(), id="iso-string"),
    ],
)
def test_eta_further_than_half_the_visibility_timeout_is_refused_like_a_countdown(settings, broker_redis, eta):
    settings.CELERY_VISIBILITY_TIMEOUT = 100
    with pytest.raises(ValueError, match="half the visibility timeout"):
        fault_tasks.record.apply_async(kwargs={"idempotency_key": "late"}, eta=eta())
    assert broker_redis.llen("default") == 0


def test_countdown_or_eta_within_half_the_visibility_timeout_is_published(settings, broker_redis):
    settings.CELERY_VISIBILITY_TIMEOUT = 100

    fault_tasks.record.apply_async(kwargs={"idempotency_key": "soon-1"}, countdown=49)
    fault_tasks.record.apply_async(kwargs={"idempotency_key": "soon-2"}, eta=datetime.now(UTC) + timedelta(seconds=45))

    assert broker_redis.llen("default") == 2
