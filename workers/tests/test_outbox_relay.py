"""The outbox: rows commit with the change, the relay publishes them, work marks them done."""

from __future__ import annotations

import signal
from datetime import timedelta

import orjson
import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.utils import timezone

from app.request_context import bind_request_id, reset_request_id
from workers.broker import queue_peek, queue_stats
from workers.idempotency import idempotency_purge
from workers.models import IdempotencyRecord, OutboxMessage
from workers.outbox import OutsideTransactionError, outbox_announce, outbox_enqueue_task, outbox_subscriber
from workers.relay import broker_memory_check, relay_batch
from workers.routing import Queue
from workers.services import deadletter_record, outbox_event_dispatch, outbox_purge
from workers.testing import wait_until
from workers.tests import fault_tasks

pytestmark = pytest.mark.django_db(transaction=True)


def _enqueue(*keys: str) -> None:
    with transaction.atomic():
        for key in keys:
            outbox_enqueue_task(task_name="workers_tests.increment", kwargs={"sleep_ms": 0}, idempotency_key=key)


def _depth(queue: str = "default") -> int:
    return next(stat.depth for stat in queue_stats((queue,)))


def test_relay_publishes_each_committed_row_once_and_marks_it_sent(broker_redis):
    _enqueue("a", "b", "c")

    assert relay_batch() == 3
    assert relay_batch() == 0

    assert _depth() == 3
    rows = OutboxMessage.objects.order_by("id")
    assert {row.status for row in rows} == {OutboxMessage.Status.SENT}
    assert all(row.publish_attempts == 1 for row in rows)
    message = queue_peek("default")
    assert message["headers"]["outbox_id"] == rows[0].pk
    assert "'idempotency_key': 'a'" in message["headers"]["kwargsrepr"]


def test_row_keeps_the_id_of_the_request_that_wrote_it_and_the_relay_publishes_it(broker_redis):
    token = bind_request_id("req-rules-42")  # what RequestIdMiddleware does for X-Request-ID
    try:
        _enqueue("in-request")
    finally:
        reset_request_id(token)
    _enqueue("outside-request")

    assert relay_batch() == 2

    rows = {row.idempotency_key: row for row in OutboxMessage.objects.all()}
    assert rows["in-request"].request_id == "req-rules-42"
    assert rows["outside-request"].request_id is None
    published = [orjson.loads(raw)["headers"] for raw in broker_redis.lrange("default", 0, -1)]
    by_row = {headers["outbox_id"]: headers.get("request_id") for headers in published}
    assert by_row == {rows["in-request"].pk: "req-rules-42", rows["outside-request"].pk: None}


def test_task_published_by_the_relay_logs_the_request_id_of_the_request_that_wrote_its_row(celery_worker, effects):
    worker = celery_worker(["default"], include=[fault_tasks.MODULE])
    letter = deadletter_record(
        task_name="workers_tests.increment",
        task_id="first-run",
        queue="default",
        kwargs={"idempotency_key": "replayed-by-staff"},
        exception="TransientError: remote answered 503",
        traceback="",
        attempts=6,
    )
    staff = Client()
    staff.force_login(get_user_model().objects.create_user(username="ops", password=None, is_staff=True))

    # The replay's outbox row is written inside the staff request, through the middleware.
    replayed = staff.post(f"/ops/deadletters/{letter.pk}/replay", HTTP_X_REQUEST_ID="req-replay-77")
    assert replayed.status_code == 202
    assert relay_batch() == 1  # the relay runs outside any request

    wait_until(lambda: worker.events("task_succeeded"), timeout=20)
    assert [event["request_id"] for event in worker.events("task_started")] == ["req-replay-77"]
    assert worker.events("task_succeeded")[0]["request_id"] == "req-replay-77"
    assert effects.applied() == {"replayed-by-staff": 1}


def test_outbox_write_outside_the_change_transaction_is_refused():
    with pytest.raises(OutsideTransactionError):
        outbox_enqueue_task(task_name="workers_tests.increment", kwargs={}, idempotency_key="x")


def test_rolled_back_change_publishes_nothing(broker_redis):
    def failing_change() -> None:
        with transaction.atomic():
            outbox_enqueue_task(task_name="workers_tests.increment", kwargs={}, idempotency_key="never")
            raise RuntimeError("the business change failed")

    with pytest.raises(RuntimeError):
        failing_change()

    assert relay_batch() == 0
    assert _depth() == 0


def test_sent_row_not_done_is_published_again_after_a_doubling_timeout(broker_redis, settings):
    settings.OUTBOX_REPUBLISH_AFTER_SECONDS = 60
    _enqueue("slow")
    relay_batch()
    row = OutboxMessage.objects.get()
    assert row.next_publish_at - row.sent_at == timedelta(seconds=60)
    assert relay_batch() == 0  # not due yet

    broker_redis.delete("default")  # a worker took the message, and then it was lost
    OutboxMessage.objects.update(next_publish_at=timezone.now())
    assert relay_batch() == 1

    row.refresh_from_db()
    assert row.publish_attempts == 2
    assert row.next_publish_at - row.sent_at == timedelta(seconds=120)
    assert _depth() == 1


def test_sent_row_whose_message_still_waits_in_a_backlog_is_not_published_again(broker_redis, settings):
    settings.OUTBOX_REPUBLISH_AFTER_SECONDS = 60
    _enqueue("queued-1", "queued-2")
    relay_batch()
    OutboxMessage.objects.update(next_publish_at=timezone.now())

    assert relay_batch() == 0

    assert _depth() == 2
    assert set(OutboxMessage.objects.values_list("publish_attempts", flat=True)) == {1}
    assert all(row.next_publish_at > timezone.now() for row in OutboxMessage.objects.all())


def test_broker_that_lost_its_memory_gets_every_sent_row_again_once(broker_redis):
    _enqueue("m1", "m2")
    broker_memory_check()
    relay_batch()
    assert broker_memory_check() is False  # marker present: nothing lost

    broker_redis.flushdb()  # a broker without persistence restarted empty
    assert broker_memory_check() is True
    assert broker_memory_check() is False  # only the first relay to notice re-fills it

    assert relay_batch() == 2
    assert _depth() == 2


def test_an_event_is_dispatched_on_the_queue_its_topic_s_subscribers_named(broker_redis):
    outbox_subscriber("workers_tests.routed", queue=Queue.WEBHOOKS)(lambda event: None)
    with transaction.atomic():
        outbox_announce(topic="workers_tests.routed", payload={}, key="k", version=1)
        outbox_announce(topic=fault_tasks.THING_CHANGED, payload={}, key="k", version=1)

    assert relay_batch() == 2

    assert (_depth(Queue.WEBHOOKS.value), _depth(Queue.DEFAULT.value)) == (1, 1)
    with pytest.raises(ValueError, match="not also on"):
        outbox_subscriber("workers_tests.routed", queue=Queue.EMAIL)


def test_row_naming_an_unknown_task_is_put_off_not_lost(broker_redis):
    with transaction.atomic():
        outbox_enqueue_task(task_name="nobody.knows", kwargs={}, idempotency_key="u1")

    assert relay_batch() == 0

    row = OutboxMessage.objects.get()
    assert row.status == OutboxMessage.Status.PENDING
    assert row.next_publish_at > timezone.now()


def test_event_dispatch_runs_subscribers_and_marks_done_in_one_transaction(effects):
    with transaction.atomic():
        outbox_announce(topic=fault_tasks.THING_CHANGED, payload={"colour": "red"}, key="thing-1", version=3)
        outbox_announce(topic="test.nobody_listens", payload={}, key="thing-2", version=1)
    event_row, lonely_row = OutboxMessage.objects.order_by("id")

    ran = outbox_event_dispatch(
        topic=fault_tasks.THING_CHANGED,
        key="thing-1",
        version=3,
        payload={"colour": "red"},
        event_key=event_row.idempotency_key,
    )
    again = outbox_event_dispatch(
        topic=fault_tasks.THING_CHANGED,
        key="thing-1",
        version=3,
        payload={"colour": "red"},
        event_key=event_row.idempotency_key,
    )
    nobody = outbox_event_dispatch(
        topic="test.nobody_listens", key="thing-2", version=1, payload={}, event_key=lonely_row.idempotency_key
    )

    assert (ran, again, nobody) == (1, 0, 0)
    assert effects.applied() == {"thing-1@3": 1}
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {OutboxMessage.Status.DONE}


def test_worker_marks_task_rows_and_event_rows_done(celery_worker, effects):
    celery_worker(["default"], include=[fault_tasks.MODULE])
    _enqueue("w1", "w2")
    with transaction.atomic():
        outbox_announce(topic=fault_tasks.THING_CHANGED, payload={}, key="thing-9", version=1)

    assert relay_batch() == 3

    wait_until(lambda: not OutboxMessage.objects.exclude(status=OutboxMessage.Status.DONE).exists(), timeout=20)
    assert effects.applied() == {"w1": 1, "w2": 1, "thing-9@1": 1}


def test_relay_process_publishes_until_sigterm_then_exits_cleanly(outbox_relay, broker_redis):
    relay = outbox_relay(include=[fault_tasks.MODULE])
    _enqueue("p1", "p2")

    wait_until(lambda: not OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING).exists(), timeout=15)
    relay.kill(signal.SIGTERM)

    assert relay.wait(timeout=10) == 0
    assert relay.events("outbox_relay_stopped")[0]["published"] == 2
    assert _depth() == 2


def test_purges_forget_only_what_is_older_than_its_window(settings):
    old = timezone.now() - timedelta(days=30)
    _enqueue("old-done", "new-done", "old-pending")
    OutboxMessage.objects.filter(idempotency_key="old-done").update(status=OutboxMessage.Status.DONE, done_at=old)
    OutboxMessage.objects.filter(idempotency_key="new-done").update(
        status=OutboxMessage.Status.DONE, done_at=timezone.now()
    )
    OutboxMessage.objects.filter(idempotency_key="old-pending").update(created_at=old)
    IdempotencyRecord.objects.create(key="old", created_at=old)
    IdempotencyRecord.objects.create(key="new")

    assert outbox_purge() == 1
    assert idempotency_purge() == 1

    assert set(OutboxMessage.objects.values_list("idempotency_key", flat=True)) == {"new-done", "old-pending"}
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
