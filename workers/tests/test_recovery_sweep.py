"""The recovery sweep gives back what dead holders held, once, and nothing a live holder holds.

Real Redis, messages taken through the fenced kombu transport; the fault tests in
``test_faults.py`` (kill -9 of a pool child, a main process, a whole worker) run the same
against real workers that are killed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import orjson
import pytest
from django.conf import settings
from kombu import Connection, Consumer, Queue

from app.celery import celery_app
from workers import kombu_redis as fence
from workers.recovery import liveness_refresh, recovery_sweep
from workers.testing import wait_until


@pytest.fixture
def holder(broker_redis) -> Iterator[fence.HolderChannel]:
    """A channel of this process that takes messages and never acknowledges them, on a broker
    that has run for a liveness TTL (before that, a sweep gives back nothing)."""
    wait_until(
        lambda: _uptime(broker_redis) >= settings.RECOVERY_LIVENESS_TTL_SECONDS,
        timeout=settings.RECOVERY_LIVENESS_TTL_SECONDS + 5,
    )
    with Connection(settings.CELERY_BROKER_URL, transport=fence.Transport) as connection:
        yield connection.default_channel


def _take(channel: fence.HolderChannel, count: int = 1) -> list[str]:
    for number in range(count):
        celery_app.send_task("workers_tests.record", kwargs={"idempotency_key": f"k{number}"}, queue="default")
    tags: list[str] = []
    consumer = Consumer(
        channel, [Queue("default")], callbacks=[lambda _body, message: tags.append(message.delivery_tag)]
    )
    channel.basic_qos(0, count, False)
    with consumer:
        while len(tags) < count:
            channel.connection.client.drain_events(timeout=5)
    return tags


def _uptime(client) -> int:
    return int(client.info("server")["uptime_in_seconds"])


def _die(channel: fence.HolderChannel, broker_redis) -> None:
    """What a kill -9 leaves: the records, and a liveness key that expires."""
    broker_redis.delete(fence.alive_key(channel.holder))


def test_messages_of_a_live_holder_stay_where_they_are(holder, broker_redis):
    _take(holder, 3)

    result = recovery_sweep()

    assert (result.held, result.restored) == (3, 0)
    assert broker_redis.hlen(fence.UNACKED_KEY) == 3
    assert broker_redis.llen("default") == 0


def test_messages_of_a_dead_holder_go_back_to_the_front_of_their_queue_marked_redelivered(holder, broker_redis):
    tags = _take(holder, 2)
    celery_app.send_task("workers_tests.record", kwargs={"idempotency_key": "waiting"}, queue="default")
    _die(holder, broker_redis)

    result = recovery_sweep()

    assert result.restored == 2
    assert not broker_redis.exists(fence.UNACKED_KEY, fence.UNACKED_INDEX_KEY, fence.HOLDERS_KEY)
    queued = [orjson.loads(raw) for raw in broker_redis.lrange("default", 0, -1)]
    assert [message["headers"]["redelivered"] for message in queued[1:]] == [True, True]  # at the tail: next
    assert {message["properties"]["delivery_tag"] for message in queued[1:]} == set(tags)
    assert "redelivered" not in queued[0]["headers"]


def test_a_broker_up_for_less_than_the_liveness_ttl_gives_back_nothing(holder, broker_redis, settings):
    """Keys lapse on the broker's clock while it is away: just after its restart a missing key
    does not mean a dead holder, who has had no chance to refresh it yet."""
    _take(holder)
    _die(holder, broker_redis)
    settings.RECOVERY_LIVENESS_TTL_SECONDS = _uptime(broker_redis) + 60

    assert recovery_sweep().restored == 0
    assert broker_redis.hlen(fence.UNACKED_KEY) == 1

    settings.RECOVERY_LIVENESS_TTL_SECONDS = 3
    assert recovery_sweep().restored == 1


def test_liveness_refresh_keeps_a_holder_alive(holder, broker_redis):
    _take(holder)
    broker_redis.expire(fence.alive_key(holder.holder), 1)

    assert liveness_refresh() == 1

    assert broker_redis.ttl(fence.alive_key(holder.holder)) > 1
    assert recovery_sweep().restored == 0


def test_sweepers_running_at_once_restore_each_message_once(holder, broker_redis):
    _take(holder, 20)
    _die(holder, broker_redis)
    results = []
    sweepers = [threading.Thread(target=lambda: results.append(recovery_sweep())) for _ in range(4)]
    for sweeper in sweepers:
        sweeper.start()
    for sweeper in sweepers:
        sweeper.join()

    assert len(results) == 4  # every sweeper finished (one that found the index emptied under it failed)
    assert sum(result.restored for result in results) == 20
    assert broker_redis.llen("default") == 20


def test_a_message_taken_again_by_a_live_holder_is_not_restored_by_a_stale_sweep(holder, broker_redis):
    """A sweeper read "dead holder" for a tag; meanwhile another sweeper restored it and a live
    worker took it again (a restore keeps the delivery tag). The first sweeper's restore must
    do nothing: the script checks the holder and the entry it read are still there."""
    [tag] = _take(holder)
    stale_raw = broker_redis.hget(fence.UNACKED_KEY, tag)
    _die(holder, broker_redis)
    assert recovery_sweep().restored == 1
    with Connection(settings.CELERY_BROKER_URL, transport=fence.Transport) as connection:
        live = connection.default_channel
        consumer = Consumer(live, [Queue("default")], callbacks=[lambda _body, _message: None])
        with consumer:
            connection.drain_events(timeout=5)
        assert broker_redis.hget(fence.HOLDERS_KEY, tag).decode() == live.holder

        from workers.recovery import _RESTORE, _restore_one  # the stale sweeper's last step

        keys = (fence.UNACKED_KEY, fence.UNACKED_INDEX_KEY, fence.HOLDERS_KEY)
        script = broker_redis.register_script(_RESTORE)
        assert _restore_one(broker_redis, script, keys, tag.encode(), holder.holder.encode(), "") == 0
        assert stale_raw != broker_redis.hget(fence.UNACKED_KEY, tag)
        assert broker_redis.llen("default") == 0


def test_a_message_with_no_holder_on_record_is_left_to_kombus_visibility_timeout(holder, broker_redis):
    [tag] = _take(holder)
    broker_redis.hdel(fence.HOLDERS_KEY, tag)  # taken by a worker without the fenced transport
    _die(holder, broker_redis)

    result = recovery_sweep()

    assert (result.unknown_holder, result.restored) == (1, 0)
    assert broker_redis.hexists(fence.UNACKED_KEY, tag)


def test_holder_records_without_their_message_are_forgotten(holder, broker_redis):
    [tag] = _take(holder)
    broker_redis.hdel(fence.UNACKED_KEY, tag)  # kombu's Channel._restore drops only the entry
    broker_redis.zrem(fence.UNACKED_INDEX_KEY, tag)

    recovery_sweep()

    assert not broker_redis.exists(fence.HOLDERS_KEY)


def test_the_default_settings_bring_a_dead_workers_messages_back_within_90_seconds():
    """Liveness TTL (the longest a dead holder stays "alive") + one sweep interval."""
    assert settings.RECOVERY_LIVENESS_TTL_SECONDS + settings.RECOVERY_SWEEP_INTERVAL_SECONDS <= 60
