"""The fence around kombu's Redis transport (``workers.kombu_redis``) holds for the installed kombu.

These fail when kombu changes what the fence relies on: the source of the methods it
copies or mirrors, the layout of the ``unacked`` records, and the message a restore pushes.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator

import orjson
import pytest
from django.conf import settings
from kombu import Connection, Consumer, Queue
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from app.celery import celery_app
from workers import kombu_redis as fence

# sha256 (first 16 hex digits) of the source of each upstream function the fence copies or
# mirrors, in kombu 5.7.0. A change here means: read the new upstream code, update
# workers/kombu_redis.py to match, then these digests.
UPSTREAM_SOURCES = {
    kombu_redis.QoS.append: "35c655f6ecc62fe6",
    kombu_redis.QoS._remove_from_indices: "980a109d54ad9136",
    kombu_redis.QoS.restore_by_tag: "58e161d81b6fe18d",
    kombu_redis.Channel._do_restore_message: "8b430df94e45b5b0",
    kombu_redis.Channel._q_for_pri: "f3997660680dd00f",
    kombu_redis.Channel.priority: "3268c345339a75d1",
    virtual.Channel._get_message_priority: "07faea72a3d7025f",
    virtual.Channel.close: "26368e1cadfc4ff9",
}


@pytest.mark.parametrize("function", list(UPSTREAM_SOURCES), ids=lambda function: function.__qualname__)
def test_the_upstream_code_the_fence_copies_is_unchanged(function):
    digest = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]
    assert digest == UPSTREAM_SOURCES[function], f"kombu changed {function.__qualname__}: review workers/kombu_redis.py"


def test_celery_uses_the_fenced_transport_on_a_redis_broker():
    assert celery_app.conf.broker_transport == "workers.kombu_redis_reconnect:Transport"  # built on the fence
    with celery_app.connection_for_read() as connection:
        assert isinstance(connection.default_channel, fence.HolderChannel)


@pytest.fixture
def channel(broker_redis) -> Iterator[fence.HolderChannel]:
    with Connection(settings.CELERY_BROKER_URL, transport=fence.Transport) as connection:
        yield connection.default_channel


def _take(channel: fence.HolderChannel, queue: str = "default") -> object:
    """Publish one task message as Celery does and take it, unacknowledged, through ``channel``."""
    celery_app.send_task("workers_tests.record", kwargs={"idempotency_key": "k"}, queue=queue)
    taken = []
    consumer = Consumer(channel, [Queue(queue)], callbacks=[lambda _body, message: taken.append(message)])
    with consumer:
        channel.connection.client.drain_events(timeout=5)
    return taken[0]


def test_taking_a_message_records_it_unacked_with_its_holder_alive_in_one_step(channel, broker_redis):
    message = _take(channel)
    tag = message.delivery_tag

    payload, exchange, routing_key = orjson.loads(broker_redis.hget(fence.UNACKED_KEY, tag))
    assert (exchange, routing_key) == ("", "default")
    assert payload["headers"]["task"] == "workers_tests.record"
    assert broker_redis.zscore(fence.UNACKED_INDEX_KEY, tag) is not None
    assert broker_redis.hget(fence.HOLDERS_KEY, tag).decode() == channel.holder
    assert 0 < broker_redis.ttl(fence.alive_key(channel.holder)) <= settings.RECOVERY_LIVENESS_TTL_SECONDS
    assert fence.live_holders() == [channel.holder]

    message.ack()
    assert not broker_redis.hexists(fence.UNACKED_KEY, tag)
    assert not broker_redis.hexists(fence.HOLDERS_KEY, tag)


def test_a_restore_pushes_what_kombus_own_restore_pushes_and_drops_the_holder(channel, broker_redis):
    message = _take(channel)
    tag = message.delivery_tag
    queue, restored = fence.restored_message(broker_redis.hget(fence.UNACKED_KEY, tag))

    channel.qos.restore_by_tag(tag)  # kombu's own

    assert queue == "default"
    assert orjson.loads(broker_redis.lindex("default", -1)) == orjson.loads(restored)
    assert orjson.loads(restored)["headers"]["redelivered"] is True
    assert not broker_redis.hexists(fence.HOLDERS_KEY, tag)
    assert not broker_redis.exists(fence.UNACKED_KEY)


@pytest.mark.parametrize(
    ("priority", "suffix"), [(0, ""), (2, ""), (3, "\x06\x163"), (9, "\x06\x169"), (42, "\x06\x169")]
)
def test_a_restored_message_goes_to_the_list_of_its_priority_step(priority, suffix):
    raw = orjson.dumps([{"headers": {}, "properties": {"priority": priority, "delivery_info": {}}}, "", "ingest"])
    assert fence.restored_message(raw, prefix="p:")[0] == f"p:ingest{suffix}"


def test_a_closed_channel_vouches_for_nothing(broker_redis):
    with Connection(settings.CELERY_BROKER_URL, transport=fence.Transport) as connection:
        channel = connection.default_channel
        _take(channel)
        assert channel.holder in fence.live_holders()
    assert channel.holder not in fence.live_holders()


def test_a_channel_closed_while_holding_a_message_vouches_until_the_message_is_settled(broker_redis):
    """A close whose restore failed (the broker away) leaves kombu's ``_delivered`` as it was:
    the channel vouches for what a running task still holds, until its ack marks it dirty."""
    with Connection(settings.CELERY_BROKER_URL, transport=fence.Transport) as connection:
        channel = connection.default_channel
        message = _take(channel)
        channel.closed = True  # what Channel.close sets first
        try:
            assert channel.holder in fence.live_holders()
            channel.qos.ack(message.delivery_tag)
            assert channel.holder not in fence.live_holders()
        finally:
            channel.closed = False
