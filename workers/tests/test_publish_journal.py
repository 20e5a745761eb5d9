"""The publish journal: a message that a dying worker took is pushed back, once, whoever published it
(the web, the outbox relay, a task's own ``enqueue``)."""

from __future__ import annotations

import base64
import signal
import threading
from collections.abc import Callable
from io import StringIO

import orjson
import pytest
from django.core.management import call_command
from django.db import transaction

from app.celery import celery_app
from workers import journal
from workers.models import OutboxMessage
from workers.outbox import outbox_enqueue_task
from workers.publish import publish_or_unavailable
from workers.relay import relay_batch
from workers.testing import wait_until
from workers.tests import fault_tasks
from workers.tests.test_web_publish_envelope import _stable


def _web(key: str) -> None:
    publish_or_unavailable(fault_tasks.increment, idempotency_key=key, sleep_ms=0)


def _relay(key: str) -> None:
    with transaction.atomic():
        outbox_enqueue_task(task_name=fault_tasks.increment.name, kwargs={"sleep_ms": 0}, idempotency_key=key)
    assert relay_batch() == 1


def _enqueue(key: str) -> None:
    """What a task or a service does (``notifications.services.sweep.deliveries_publish``)."""
    fault_tasks.increment.enqueue(idempotency_key=key, sleep_ms=0)


PUBLISHERS: dict[str, Callable[[str], None]] = {"web": _web, "relay": _relay, "enqueue": _enqueue}
publishers = pytest.mark.parametrize("publish", PUBLISHERS.values(), ids=PUBLISHERS.keys())


def _publish(keys: list[str]) -> None:
    for key in keys:
        _web(key)


def _journaled(broker_redis) -> set[str]:
    return {task_id.decode() for task_id in broker_redis.hkeys(journal.JOURNAL_KEY)}


def _taken_by_a_worker_that_died(broker_redis) -> dict:
    """What a worker's BRPOP takes; the worker dies before recording it as unacknowledged."""
    return orjson.loads(broker_redis.rpop("default"))


@publishers
def test_a_publish_writes_the_queue_and_the_journal_together(broker_redis, db, publish):
    publish("j-1")

    queued = orjson.loads(broker_redis.lindex("default", 0))
    task_id = queued["headers"]["id"]
    assert orjson.loads(base64.b64decode(queued["body"]))[1]["idempotency_key"] == "j-1"
    assert queued["headers"][journal.JOURNALED_HEADER] is True
    assert orjson.loads(broker_redis.hget(journal.JOURNAL_KEY, task_id)) == queued
    assert broker_redis.zscore(journal.JOURNAL_INDEX_KEY, task_id) is not None


def test_a_message_taken_and_lost_is_pushed_back_and_applied_once(celery_worker, effects, broker_redis):
    keys = [f"j-lost-{number}" for number in range(5)]
    _publish(keys)
    lost = _taken_by_a_worker_that_died(broker_redis)

    swept = journal.journal_sweep(min_age=0)

    assert (swept.republished, swept.waiting, swept.held) == (1, 4, 0)
    front = orjson.loads(broker_redis.lindex("default", -1))  # the next message a worker takes
    assert front["headers"]["id"] == lost["headers"]["id"]
    assert front["properties"]["delivery_info"]["redelivered"] is True
    assert front["properties"]["delivery_tag"] != lost["properties"]["delivery_tag"]

    celery_worker(["default"], include=[fault_tasks.MODULE])
    wait_until(lambda: len(effects.applied()) == len(keys), timeout=60)
    wait_until(lambda: not _journaled(broker_redis), timeout=10, message="runs clear their journal entries")
    assert effects.applied() == dict.fromkeys(keys, 1)
    assert effects.redelivered() == 1


@publishers
def test_messages_waiting_in_their_queue_or_held_by_kombu_are_left_alone(broker_redis, db, publish):
    publish("j-held")
    publish("j-waiting")
    held = _taken_by_a_worker_that_died(broker_redis)
    broker_redis.hset(journal.UNACKED_KEY, held["properties"]["delivery_tag"], orjson.dumps([held, "", "default"]))

    swept = journal.journal_sweep(min_age=0)

    assert (swept.republished, swept.waiting, swept.held) == (0, 1, 1)
    assert broker_redis.llen("default") == 1


def test_a_message_a_worker_records_between_the_sweeps_two_looks_is_left_alone(broker_redis):
    _publish(["j-handoff"])
    taken = _taken_by_a_worker_that_died(broker_redis)
    tag = taken["properties"]["delivery_tag"]
    record = threading.Timer(  # the worker's second round trip, late: after the first look, before the second
        journal.CONFIRM_SECONDS / 5,
        lambda: broker_redis.hset(journal.UNACKED_KEY, tag, orjson.dumps([taken, "", "default"])),
    )
    record.start()

    swept = journal.journal_sweep(min_age=0)
    record.join()

    assert (swept.republished, swept.held) == (0, 1)
    assert broker_redis.llen("default") == 0


def test_only_entries_older_than_the_minimum_age_are_examined(broker_redis):
    _publish(["j-young"])
    _taken_by_a_worker_that_died(broker_redis)

    assert journal.journal_sweep(min_age=60).examined == 0
    assert journal.journal_sweep(min_age=0).republished == 1


def test_a_pushed_back_message_lost_again_is_pushed_back_again(broker_redis):
    _publish(["j-twice"])
    _taken_by_a_worker_that_died(broker_redis)
    journal.journal_sweep(min_age=0)
    _taken_by_a_worker_that_died(broker_redis)

    assert journal.journal_sweep(min_age=0).republished == 1
    assert broker_redis.llen("default") == 1


def test_a_run_that_began_clears_its_entry_and_the_sweep_has_nothing_to_do(celery_worker, effects, broker_redis):
    _publish(["j-ran"])
    celery_worker(["default"], include=[fault_tasks.MODULE])
    wait_until(lambda: effects.applied() == {"j-ran": 1}, timeout=60)
    wait_until(lambda: not _journaled(broker_redis), timeout=10)

    assert journal.journal_sweep(min_age=0).examined == 0
    assert broker_redis.zcard(journal.JOURNAL_INDEX_KEY) == 0


def test_purging_a_queue_forgets_its_journal_entries(broker_redis):
    _publish(["j-purged-1", "j-purged-2"])
    out = StringIO()

    call_command("queues", "purge", "default", "--yes", stdout=out)

    assert "default: purged 2 messages (2 journaled)" in out.getvalue()
    assert not _journaled(broker_redis)
    assert journal.journal_sweep(min_age=0).republished == 0


def _waiting_in_brpop(broker_redis) -> int:
    """Clients blocked in ``BRPOP`` on this test's broker database (the server is shared with the
    other xdist workers' brokers)."""
    db = str(broker_redis.connection_pool.connection_kwargs.get("db", 0))
    return sum(
        1
        for client in broker_redis.client_list()
        if client["cmd"] == "brpop" and "b" in client["flags"] and str(client["db"]) == db
    )


def _stopped_in_brpop(workers, broker_redis) -> bool:
    """Stop every worker's main process (SIGSTOP) while it waits in ``BRPOP``: Redis hands
    the next messages to those pending ``BRPOP``s, and a stopped worker never records them."""
    wait_until(lambda: _waiting_in_brpop(broker_redis) == len(workers), timeout=15)
    for worker in workers:
        worker.kill(signal.SIGSTOP)
    if _waiting_in_brpop(broker_redis) == len(workers):
        return True
    for worker in workers:  # a BRPOP timed out in between: let them poll again
        worker.kill(signal.SIGCONT)
    return False


def test_relay_and_enqueue_messages_taken_by_workers_killed_before_recording_them_come_back_once(
    celery_worker, effects, broker_redis
):
    """Two real workers wait in ``BRPOP``; each is stopped there, takes one message (one the
    relay published, one ``enqueue``) that is then in neither its queue nor ``unacked``, and
    is killed -9: kombu's window. The journal sweep puts both back and a new worker runs each once."""
    workers = [celery_worker(["default"], include=[fault_tasks.MODULE]) for _ in range(2)]
    keys: list[str] = []
    for attempt in range(3):
        relayed, enqueued = f"j-kill-relay-{attempt}", f"j-kill-enqueue-{attempt}"
        if not _stopped_in_brpop(workers, broker_redis):
            continue  # nothing published this attempt: its keys are not expected
        keys += [relayed, enqueued]
        _relay(relayed)
        _enqueue(enqueued)
        if broker_redis.llen("default") == 0 and broker_redis.hlen(journal.UNACKED_KEY) == 0:
            break
        for worker in workers:  # a BRPOP had timed out: the message waits; run it and try again
            worker.kill(signal.SIGCONT)
        wait_until(lambda: set(keys) <= set(effects.applied()), timeout=30)  # noqa: B023
    else:
        pytest.fail("no worker stayed stopped in BRPOP long enough in 3 attempts")
    for worker in workers:
        worker.kill_group()
        worker.wait(timeout=10)

    assert journal.journal_sweep(min_age=0).republished == 2
    celery_worker(["default"], include=[fault_tasks.MODULE])

    wait_until(lambda: set(effects.applied()) == set(keys), timeout=60)
    wait_until(lambda: not _journaled(broker_redis), timeout=10, message="runs clear their journal entries")
    wait_until(lambda: not OutboxMessage.objects.exclude(status=OutboxMessage.Status.DONE).exists(), timeout=10)
    assert effects.applied() == dict.fromkeys(keys, 1)
    assert effects.redelivered() == 2


def test_a_task_publish_with_a_countdown_is_kombus_message_journaled_and_held_while_it_waits(
    celery_worker, effects, broker_redis
):
    """``apply_async`` (what a retry and a database wait publish) goes through the journal
    with kombu's envelope, field by field; a worker holds it in ``unacked`` until it is due."""
    kwargs = {"idempotency_key": "j-countdown", "sleep_ms": 0}
    with celery_app.connection_for_write() as connection:  # an explicit connection keeps kombu's path
        fault_tasks.increment.apply_async(kwargs=kwargs, countdown=3, headers={"outbox_id": 1}, connection=connection)
    fault_tasks.increment.apply_async(kwargs=kwargs, countdown=3, headers={"outbox_id": 1})
    kombus, ours = (orjson.loads(raw) for raw in reversed(broker_redis.lrange("default", 0, -1)))

    def stable(fields: dict) -> dict:
        return {name: value for name, value in _stable(fields).items() if name != "eta"}  # the due time: per message

    assert {name: ours[name] for name in ours if name not in ("headers", "properties")} == {
        name: kombus[name] for name in kombus if name not in ("headers", "properties")
    }
    assert set(ours["headers"]) == set(kombus["headers"]) | {journal.JOURNALED_HEADER}
    assert stable(ours["headers"]) == {**stable(kombus["headers"]), journal.JOURNALED_HEADER: True}
    assert set(ours["properties"]) == set(kombus["properties"])
    assert stable(ours["properties"]) == stable(kombus["properties"])
    assert ours["headers"]["eta"] is not None
    assert _journaled(broker_redis) == {ours["headers"]["id"]}
    broker_redis.delete("default")
    journal.journal_clear(ours["headers"]["id"])

    celery_worker(["default"], include=[fault_tasks.MODULE])
    fault_tasks.increment.apply_async(kwargs=kwargs, countdown=4)
    wait_until(lambda: broker_redis.hlen(journal.UNACKED_KEY) == 1, timeout=3)  # taken at once, held until due
    assert journal.journal_sweep(min_age=0).held == 1
    wait_until(lambda: effects.applied() == {"j-countdown": 1}, timeout=30)
    wait_until(lambda: not _journaled(broker_redis), timeout=10)
