"""Workaround, fenced here: kombu 5.7's Redis channel after a broker connection loss.

Why a worker exited with ``Unrecoverable error: AttributeError("'NoneType' object has no
attribute 'hostname'")`` on the first broker outage (celery 5.7.0, kombu 5.7.0):

1. The consumer is almost always waiting in a ``BRPOP`` when the broker goes away.
   Celery's ``Consumer.on_connection_error_after_connected`` calls ``connection.collect()``
   and then ``connection.close()``.
2. ``collect()`` (the Redis transport has no ``_collect``) closes the default channel. The
   Redis ``Channel.close()`` first reads the pending ``BRPOP`` reply; on the dead socket that
   raises ``ConnectionError`` *before* the channel marks itself closed, and
   ``maybe_close_channel`` swallows it. ``collect()`` then detaches the transport
   (``transport.client = None``) but keeps the channel as the connection's default channel.
3. ``close()`` closes that channel again. Now nothing is pending, so the full close runs,
   and its restore of the unacknowledged messages builds a new connection pool from
   ``transport.client``: ``None.hostname``. An ``AttributeError`` is neither a connection
   nor a channel error, so it escapes every ``ignore_errors`` and Celery stops the worker.
   An acknowledgement sent later through such a channel fails the same way.

Upstream: https://github.com/celery/celery/issues/9250 reports this crash class (a
``NoneType`` attribute on reconnection, with ``worker_cancel_long_running_tasks_on_connection_loss``);
the Redis variant is the double close above. ``workers/tests/test_kombu_redis_reconnect.py``
replays the sequence on kombu's own transport and fails once kombu no longer crashes, so
this module can then go.

What this module changes, and only on the Redis broker (``celery_config.broker_transport``), on
top of the channel of ``workers.kombu_redis`` that records every unacknowledged message's holder
(dead-consumer recovery):

* A channel remembers the connection parameters it was opened with, so a detached channel
  still reaches the broker: its close restores what it held, and a task that finishes after
  the reconnect acknowledges its message (on Redis a delivery tag is a key of the shared
  ``unacked`` hash, valid on any connection).
* Messages whose restore failed because the broker was away (prefetched messages Celery
  dropped at the connection loss) are put back on their queue by the first new channel that
  consumes, instead of waiting for the visibility timeout (an hour by default). A message
  whose task is still running in this worker is left to that task's acknowledgement: a live
  worker's work is never handed out twice.
* A message taken by ``BRPOP`` whose record as unacknowledged (the second round trip) failed
  because the broker went away in between is in neither the queue nor ``unacked``: it is
  kept in memory and put back the same way (kombu would drop it; the publish journal's
  sweep would bring it back only after ``JOURNAL_SWEEP_MIN_AGE_SECONDS``).
"""

from __future__ import annotations

from typing import Any

import structlog
from celery.worker import state as worker_state
from kombu.transport import redis as kombu_redis

from workers.kombu_redis import HolderChannel, HolderQoS

log = structlog.get_logger(__name__)

TRANSPORT = "workers.kombu_redis_reconnect:Transport"
"""What ``broker_transport`` names on a Redis broker."""

_stranded: list[Any] = []  # QoS objects (kombu ships no types for their state)
"""Acknowledgement state of channels whose restore failed because the broker was away."""
_unrecorded: list[Any] = []
"""Messages taken from a queue whose record as unacknowledged failed (broker away)."""


def _held_tags() -> set[str]:
    """Delivery tags of the tasks this worker process is running right now."""
    return {request.message.delivery_tag for request in tuple(worker_state.active_requests)}


def stranded_restore(channel: Any) -> int:
    """Put back on their queues the stranded messages that no running task holds; returns
    how many. Restoring is by tag and atomic (kombu's ``restore_by_tag``): a message already
    acknowledged or restored elsewhere is left alone."""
    if not (_stranded or _unrecorded):
        return 0
    restored = 0
    while _unrecorded:
        message = _unrecorded[0]
        with channel.conn_or_acquire() as client, client.pipeline() as pipe:
            delivery = message.delivery_info
            channel._do_restore_message(message._raw, delivery["exchange"], delivery["routing_key"], pipe)
            pipe.execute()
        _unrecorded.pop(0)
        restored += 1
    held = _held_tags()
    for qos in tuple(_stranded):
        for tag in [tag for tag in tuple(qos._delivered) if tag not in held]:
            channel.qos.restore_by_tag(tag)
            qos._delivered.pop(tag, None)
            restored += 1
        if not qos._delivered:
            _stranded.remove(qos)
    if restored:
        log.warning("broker_reconnect_restored", messages=restored)
    return restored


class QoS(HolderQoS):
    def _connection_errors(self) -> tuple[type[BaseException], ...]:
        channel: Any = self.channel
        return tuple(channel.connection_errors)

    def append(self, message: Any, delivery_tag: str) -> None:
        try:
            super().append(message, delivery_tag)
        except self._connection_errors():
            _unrecorded.append(message)  # put back by the next channel that consumes
            raise

    def restore_unacked(self, client: Any = None) -> Any:
        try:
            return super().restore_unacked(client)
        except self._connection_errors():
            if self not in _stranded:
                _stranded.append(self)  # restored by the next channel that consumes
            raise


class Channel(HolderChannel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sf_conninfo = self.connection.client

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:  # detached by Connection.collect(): see above
            self.connection.client = self._sf_conninfo
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]

    def basic_consume(self, *args: Any, **kwargs: Any) -> Any:
        consumer_tag = super().basic_consume(*args, **kwargs)
        try:
            stranded_restore(self)
        except tuple(self.connection_errors) as error:  # type: ignore[attr-defined]  # away again: the next consume tries again
            log.warning("broker_reconnect_restore_failed", error=str(error))
        return consumer_tag


class Transport(kombu_redis.Transport):
    Channel = Channel
