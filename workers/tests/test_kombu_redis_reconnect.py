"""The sequence behind ``workers.kombu_redis_reconnect``, replayed on a private redis-server.

A consumer holds one unacknowledged message and waits in ``BRPOP``, as does a second
channel opened after it (a worker's control and event channels); the broker dies; the
connection is torn down as Celery 5.7's consumer does after a connection loss
(``collect()``, then ``close()``). On kombu's own Redis transport that raises
``AttributeError: 'NoneType' object has no attribute 'hostname'``, which stops a worker.
The first test fails once kombu no longer does: then the workaround can go.
"""

from __future__ import annotations

import inspect
import socket

import pytest
from celery.worker.consumer.consumer import Consumer
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from workers import kombu_redis_reconnect
from workers.kombu_redis_reconnect import Transport
from workers.testing import PrivateRedis, private_redis_server

QUEUE = Queue("reconnect-probe", Exchange("reconnect-probe"), "reconnect-probe")
OTHER = Queue("reconnect-probe-other", Exchange("reconnect-probe-other"), "reconnect-probe-other")


@pytest.fixture(autouse=True)
def _no_leftovers():
    kombu_redis_reconnect._stranded.clear()
    kombu_redis_reconnect._unrecorded.clear()
    yield
    kombu_redis_reconnect._stranded.clear()
    kombu_redis_reconnect._unrecorded.clear()


def _holding_one_message_then_broker_lost(server: PrivateRedis, transport: type) -> Connection:
    connection = Connection(server.url, transport=transport)
    connection.Producer().publish({"n": 1}, exchange=QUEUE.exchange, routing_key=QUEUE.routing_key, declare=[QUEUE])
    received = []
    connection.Consumer([QUEUE], callbacks=[lambda body, message: received.append(message)]).consume()
    other = connection.channel()  # a worker has more channels (control, events), opened later
    connection.Consumer([OTHER], channel=other).consume()
    connection.drain_events(timeout=5)  # delivered, not acknowledged
    assert len(received) == 1
    with pytest.raises(socket.timeout):  # both channels wait in BRPOP for the next one, as a worker does
        connection.drain_events(timeout=0.5)
    assert connection.default_channel._in_poll
    assert other._in_poll
    server.kill()
    return connection


def _celery_teardown(connection: Connection) -> None:
    """What ``Consumer.on_connection_error_after_connected`` does with the lost connection."""
    connection.collect(socket_timeout=1)
    connection.close()


def test_kombus_own_redis_transport_still_crashes_on_a_lost_connection_teardown():
    with private_redis_server() as server:
        connection = _holding_one_message_then_broker_lost(server, kombu_redis.Transport)

        with pytest.raises(AttributeError, match="hostname"):
            _celery_teardown(connection)


def test_celery_still_tears_a_lost_connection_down_with_collect_then_close():
    source = inspect.getsource(Consumer.on_connection_error_after_connected)

    assert source.index(".collect(") < source.index("connection.close")


def test_the_fenced_transport_tears_down_quietly_and_puts_the_held_message_back_when_the_broker_returns():
    with private_redis_server(persistent=True) as server:
        connection = _holding_one_message_then_broker_lost(server, Transport)
        _celery_teardown(connection)  # no AttributeError
        assert kombu_redis_reconnect._stranded  # the close could not restore it: kept for later

        server.start()  # with its file: the message is in ``unacked``
        again = Connection(server.url, transport=Transport)
        received = []
        again.Consumer([QUEUE], callbacks=[lambda body, message: received.append((body, message))]).consume()
        again.drain_events(timeout=5)

        assert [body for body, _ in received] == [{"n": 1}]
        assert received[0][1].delivery_info["redelivered"] is True
        assert not kombu_redis_reconnect._stranded
        received[0][1].ack()
        again.close()
