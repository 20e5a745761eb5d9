"""The publish journal: a web-published message that a dying worker took is pushed back, once."""

from __future__ import annotations

from io import StringIO

import orjson
from django.core.management import call_command

from workers import journal
from workers.publish import publish_or_unavailable
from workers.testing import wait_until
from workers.tests import fault_tasks


def _publish(keys: list[str]) -> None:
    for key in keys:
        publish_or_unavailable(fault_tasks.increment, idempotency_key=key, sleep_ms=0)


def _journaled(broker_redis) -> set[str]:
    return {task_id.decode() for task_id in broker_redis.hkeys(journal.JOURNAL_KEY)}


def _taken_by_a_worker_that_died(broker_redis) -> dict:
    """What a worker's BRPOP takes; the worker dies before recording it as unacknowledged."""
    return orjson.loads(broker_redis.rpop("default"))


def test_a_publish_writes_the_queue_and_the_journal_together(broker_redis):
    task_id = publish_or_unavailable(fault_tasks.increment, idempotency_key="j-1", sleep_ms=0)

    queued = orjson.loads(broker_redis.lindex("default", 0))
    assert queued["headers"]["id"] == task_id
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


def test_messages_waiting_in_their_queue_or_held_by_kombu_are_left_alone(broker_redis):
    _publish(["j-held", "j-waiting"])
    held = _taken_by_a_worker_that_died(broker_redis)
    broker_redis.hset(journal.UNACKED_KEY, held["properties"]["delivery_tag"], orjson.dumps([held, "", "default"]))

    swept = journal.journal_sweep(min_age=0)

    assert (swept.republished, swept.waiting, swept.held) == (0, 1, 1)
    assert broker_redis.llen("default") == 1


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
