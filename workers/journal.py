"""The publish journal: what is handed to a Redis broker is not lost by a worker.

kombu's Redis transport takes a message with ``BRPOP`` and records it as
unacknowledged (``unacked`` hash) in a second round trip. A worker's main process
killed between the two — a ``kill -9``, an OOM kill, a lost machine — loses the
message from the broker: neither the queue nor the ``unacked`` hash holds it, so
no restore sweep brings it back. An outbox row would wait for the relay's republish
(``OUTBOX_REPUBLISH_AFTER_SECONDS``, 15 minutes); a message published from a web
request (an events batch answered 202), by a task or by beat would be gone. The
journal closes that window for every publish to a Redis broker:

* :func:`journal_push` writes the message into the queue **and** into the journal
  (a hash by task id, an index by publish time) in one script: both or neither. The
  web's publish (``workers.publish``), the outbox relay's batch (:func:`journal_push_many`,
  one script per message, all in one round trip) and a task's ``apply_async``
  (``enqueue``, retries, database waits, beat: ``workers.publish.JournalProducer``) all
  write kombu's envelope this way.
* A task run begins with :func:`journal_clear` (``workers.reliable``): from there
  on kombu holds the message in ``unacked`` (it records it before the consumer sees
  it), and dead-consumer recovery (``workers.recovery``) covers a worker that dies.
* :func:`journal_sweep` (beat, every 10 s) looks at entries older than
  ``JOURNAL_SWEEP_MIN_AGE_SECONDS`` (10 s): one still waiting in its queue (the queue's
  next message was published no later than it) or held by kombu (its delivery tag in
  ``unacked``) is left alone; any other was taken and lost — if it is so still at a
  second look ``CONFIRM_SECONDS`` later — and is pushed back to the front of its queue
  marked redelivered, as kombu's own restore does.

Why 10 s and every 10 s (it was 60 s and every minute): an outbox row's message lost in
the window waited for the sweep, or for the relay's republish after 15 minutes, and a
killed worker can lose one message per process; a sweep every 10 s brings it back within
~10-20 s of its publish. What keeps a short age safe is what the sweep leaves alone,
whatever the age: a message in its queue or in ``unacked`` is never pushed back, and one
that has begun has no entry. Only a message in none of them, at both looks, is pushed
back: kombu records a taken message within the same event-loop turn as its ``BRPOP``
reply (well under a millisecond), so a live worker's message is in ``unacked`` by the
second look; the minimum age only spares the freshly published messages that an idle
worker takes at once from any look at all, and a worker stalled longer than that between
its ``BRPOP`` and its record (stopped, swapped out) costs a second run, behind the
idempotency barrier. The sweep is cheap when nothing is due: one ``ZRANGEBYSCORE``.

A Celery retry (or a database wait) published with a countdown is journaled like any
publish, under the same task id: the run that publishes it cleared the id's previous
entry when it began, so the entry is the retry's. A worker takes a countdown message at
once and kombu keeps it in ``unacked`` until it is due (Celery's ETA handling acknowledges
only after the run), so the sweep finds it held for the whole countdown and the entry
goes when the retry's run begins; one lost between its ``BRPOP`` and that record is
pushed back like any other. A countdown is capped at half the visibility timeout
(``ReliableTask.apply_async``), so kombu's own restore never races it.

A run the sweep mistakes for lost (taken in the very millisecond of the check) runs
twice, which the task's idempotency barrier makes harmless. Not journaled: messages
on AMQP brokers, which do not have this window, and an ``apply_async`` the journal's
envelope cannot carry (an explicit connection, exchange, priority, compression or
serializer: kombu's path, ``workers.publish.journaled``). A message rejected with
requeue (kombu puts it back itself) is no longer journaled: its entry went when it began.
The journal holds a copy of every message not yet started, so the broker's memory for a
backlog is about twice the queue's.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import redis
import structlog
from django.conf import settings

from app.redis_client import round_trip
from workers.broker import broker_redis, key_prefix, message_sent_at, queue_peek
from workers.kombu_redis import UNACKED_KEY

log = structlog.get_logger(__name__)

JOURNAL_KEY = "sf:journal"
JOURNAL_INDEX_KEY = "sf:journal:published"
JOURNALED_HEADER = "journaled"
SWEEP_BATCH = 500
CONFIRM_SECONDS = 0.5  # between the two looks at a message that seems lost (kombu's handoff: < 1 ms)


# One command, atomic, one reply: a MULTI of the same three costs five commands and replies
# on the events request (measured with bench/ingest_bench.py). ARGV[4] is the push: LPUSH
# puts a message at the back of its queue (BRPOP takes from the tail), RPUSH at the front.
# Sent as EVAL on the thread's own connection (``app.redis_client.round_trip``): one command a
# restarted Redis still understands, where EVALSHA would need a NOSCRIPT fallback.
_WRITE_SCRIPT = """
redis.call(ARGV[4], KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"""


def _write_command(queue: str, envelope: dict[str, Any], *, push: str, moment: float) -> tuple[Any, ...]:
    """The one EVAL that pushes ``envelope`` onto ``queue`` and (re)writes its entry, dated ``moment``."""
    keys = (f"{key_prefix()}{queue}", JOURNAL_KEY, JOURNAL_INDEX_KEY)
    args = (envelope["headers"]["id"], orjson.dumps(envelope), moment, push)
    return ("EVAL", _WRITE_SCRIPT, len(keys), *keys, *args)


def _write(client: redis.Redis, queue: str, envelope: dict[str, Any], *, push: str, moment: float) -> None:
    round_trip(client, [_write_command(queue, envelope, push=push, moment=moment)])


def journal_push(client: redis.Redis, queue: str, envelope: dict[str, Any]) -> None:
    """Put ``envelope`` (a kombu Redis message) at the back of ``queue`` and in the journal, atomically."""
    journal_push_many(client, [(queue, envelope)])


def journal_push_many(client: redis.Redis, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """:func:`journal_push` for each ``(queue, envelope)``, in one round trip (the relay's batch).

    Each message is atomic with its entry; a batch cut short by a broker error leaves some
    published, which the caller (its transaction rolled back) publishes again.
    """
    if not messages:
        return
    moment = time.time()
    commands = []
    for queue, envelope in messages:
        envelope["headers"][JOURNALED_HEADER] = True
        commands.append(_write_command(queue, envelope, push="LPUSH", moment=moment))
    round_trip(client, commands)


def journal_clear(task_id: str) -> None:
    """The message ``task_id`` has started: kombu holds it from now on.

    Not a transaction: an index entry left without its message is dropped by the sweep.
    """
    with broker_redis().pipeline(transaction=False) as pipe:
        pipe.hdel(JOURNAL_KEY, task_id)
        pipe.zrem(JOURNAL_INDEX_KEY, task_id)
        pipe.execute()


def journal_forget_queue(queue: str) -> int:
    """Drop the entries of ``queue`` (after an operator purged it); returns how many."""
    client = broker_redis()
    dropped = 0
    for task_id, raw in client.hscan_iter(JOURNAL_KEY):
        if orjson.loads(raw)["properties"]["delivery_info"]["routing_key"] == queue:
            journal_clear(task_id.decode())
            dropped += 1
    return dropped


@dataclass(frozen=True)
class SweepResult:
    examined: int
    waiting: int
    held: int
    republished: int


def journal_sweep(*, min_age: float | None = None, now: float | None = None) -> SweepResult:
    """Push back every journaled message older than ``min_age`` seconds that was taken and lost.

    A message found neither waiting nor held is looked at again ``CONFIRM_SECONDS`` later
    and pushed back only if it is still journaled, still not in its queue and still not in
    ``unacked``: one caught in kombu's sub-millisecond handoff at the first look is held (or
    has begun) by the second. Idempotent and safe to run in several processes at once: a
    message pushed back twice runs twice, behind its idempotency barrier.
    """
    client = broker_redis()
    age = settings.JOURNAL_SWEEP_MIN_AGE_SECONDS if min_age is None else min_age
    moment = time.time() if now is None else now
    due = [task_id.decode() for task_id in client.zrangebyscore(JOURNAL_INDEX_KEY, "-inf", moment - age)]
    places = _places(client, due[:SWEEP_BATCH])
    taken = [task_id for task_id, (place, _) in places.items() if place == "taken"]
    if taken:
        time.sleep(CONFIRM_SECONDS)
        places.update(_places(client, taken))
    lost = [envelope for place, envelope in places.values() if place == "taken" and envelope is not None]
    for envelope in lost:  # after every look: a pushed-back message would hide the next one in its queue
        _push_back(client, envelope["properties"]["delivery_info"]["routing_key"], envelope, moment)
    counts = Counter(place for place, _ in places.values())
    result = SweepResult(examined=len(places), waiting=counts["waiting"], held=counts["held"], republished=len(lost))
    if lost:
        log.warning("journal_messages_republished", **result.__dict__)
    return result


def _places(client: redis.Redis, task_ids: list[str]) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """Where each journaled message is: ``begun`` (its entry gone), ``waiting`` in its queue
    (the queue's next message was published no later than it), ``held`` in ``unacked``,
    or else ``taken`` (and lost, unless a worker is recording it this very moment)."""
    places: dict[str, tuple[str, dict[str, Any] | None]] = {}
    next_sent: dict[str, float | None] = {}
    for task_id in task_ids:
        raw = client.hget(JOURNAL_KEY, task_id)
        if raw is None:  # begun meanwhile
            client.zrem(JOURNAL_INDEX_KEY, task_id)
            places[task_id] = ("begun", None)
            continue
        envelope = orjson.loads(raw)
        queue = envelope["properties"]["delivery_info"]["routing_key"]
        if queue not in next_sent:
            next_message = queue_peek(queue)
            next_sent[queue] = message_sent_at(next_message) if next_message else None
        queued_since = next_sent[queue]
        if queued_since is not None and queued_since <= (message_sent_at(envelope) or 0.0):
            places[task_id] = ("waiting", envelope)
        elif client.hexists(f"{key_prefix()}{UNACKED_KEY}", envelope["properties"]["delivery_tag"]):
            places[task_id] = ("held", envelope)
        else:
            places[task_id] = ("taken", envelope)
    return places


def _push_back(client: redis.Redis, queue: str, envelope: dict[str, Any], moment: float) -> None:
    """To the front of its queue, marked redelivered as kombu's own restore marks it, still journaled."""
    envelope["headers"]["redelivered"] = True
    envelope["properties"]["delivery_info"]["redelivered"] = True
    envelope["properties"]["delivery_tag"] = str(uuid.uuid4())
    _write(client, queue, envelope, push="RPUSH", moment=moment)
