"""Email under faults, on real email workers and a real SMTP server (aiosmtpd on loopback).

1,000 notifications are committed at once; their drains are published after the commit, and
a hundred more drain messages go out beside them (as a broker handing messages out again,
and drains of other bursts, would do), so many drains claim from the same rows at once.
Without kills the server receives each Message-ID exactly once. With kill -9 of the whole
worker (twice, as a lost host) and of one pool child, nothing is lost, and the duplicates are
at most the sends a kill caught in the window we cannot close: the server accepted the
message, the worker died before committing ``sent``. Those are counted at each kill from
both sides (Message-IDs the server accepted, rows still ``sending`` once the killed process
is gone), and the test prints both counts.

Everything runs with production's timeouts: the rows a killed drain held come back when their
lease runs out (``EMAIL_LEASE_SECONDS``, 60 s), published again by the emails sweep; its
messages through dead-consumer recovery (30 s liveness, a sweep every 15 s), and a drain message
a worker took and lost (killed between its ``BRPOP`` and kombu's record of it) through the
journal sweep (``workers.journal``); the sweeps run from beat on production's schedule, on the
email and a maintenance worker. So the kill run waits out a lease once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from notifications.models import EmailNotification
from notifications.tasks import email_drain
from notifications.tests.factories import notifications_make
from workers.kombu_redis import UNACKED_KEY
from workers.models import DeadLetter
from workers.routing import Queue
from workers.testing import ManagedProcess, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("faults"), pytest.mark.timeout(300)]

COUNT = 1000
EXTRA_DRAINS = 100
EMAIL_WORKER_PROCESSES = 4
ACCEPT_SETTLE_SECONDS = 0.5


def _notifications(tenant, run: str) -> list[EmailNotification]:
    return notifications_make(tenant, run, COUNT)


def _more_drains(run: str) -> None:
    """Drain messages beyond the burst's own, each with a key of its own."""
    for number in range(EXTRA_DRAINS):
        email_drain.enqueue(idempotency_key=f"extra:{run}:{number}")


def _email_worker(celery_worker, smtp_server) -> Callable[[], ManagedProcess]:
    env = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_server.port)}
    return lambda: celery_worker([Queue.EMAIL.value], concurrency=EMAIL_WORKER_PROCESSES, extra_env=env)


def _sent() -> int:
    return EmailNotification.objects.filter(state=EmailNotification.State.SENT).count()


def _settle(broker_redis, timeout: float) -> None:
    """Every notification sent and the broker drained (no retry of a redelivered copy pending)."""
    try:
        wait_until(lambda: _sent() == COUNT, timeout=timeout, interval=0.2)
    except AssertionError as timeout_error:
        unsent = EmailNotification.objects.exclude(state=EmailNotification.State.SENT)
        letters = list(DeadLetter.objects.values_list("exception", flat=True)[:5])
        raise AssertionError(
            f"not sent: {list(unsent.values_list('pk', 'state', 'attempts', 'last_error')[:10])}; "
            f"dead letters: {DeadLetter.objects.count()} {letters}"
        ) from timeout_error
    wait_until(
        lambda: broker_redis.llen(Queue.EMAIL.value) == 0 and broker_redis.hlen(UNACKED_KEY) == 0,
        timeout=60,
        interval=0.2,
        message="the broker drained",
    )


def _report(smtp_server, rows: list[EmailNotification]) -> tuple[int, int]:
    received = Counter(smtp_server.message_ids())
    lost = sum(1 for row in rows if received[row.message_id] == 0)
    duplicated = sum(count - 1 for count in received.values() if count > 1)
    return lost, duplicated


def _sending() -> set[str]:
    return {row.message_id for row in EmailNotification.objects.filter(state=EmailNotification.State.SENDING)}


def _caught_in_the_window(smtp_server) -> set[str]:
    """Message-IDs the server accepted whose row is still ``sending``."""
    return _sending() & set(smtp_server.message_ids())


def test_1000_emails_drained_many_times_over_without_kills_are_each_received_once(
    celery_worker, smtp_server, broker_redis, alice
) -> None:
    _email_worker(celery_worker, smtp_server)()
    rows = _notifications(alice, "no-kill")
    _more_drains("no-kill")

    _settle(broker_redis, timeout=120)

    lost, duplicated = _report(smtp_server, rows)
    print(f"[email, no kills] {COUNT} sends: lost {lost}, duplicated {duplicated}")  # noqa: T201
    assert (lost, duplicated) == (0, 0)


def test_1000_emails_under_kill_9_lose_nothing_and_duplicate_only_sends_caught_between_accept_and_commit(
    celery_worker, smtp_server, broker_redis, alice, journal_sweeps
) -> None:
    # A server taking 10 ms over RCPT, as a real one checking its recipients does: a send spends
    # most of its run in ``sending``, so the kills strike sends in flight (with a reused connection
    # and instant answers, three kills could all land between sends, and the test would prove
    # nothing). The wait is before the server has the message, so it moves no accept out of the
    # window the test counts.
    smtp_server.handler.rcpt_seconds = 0.01
    start = _email_worker(celery_worker, smtp_server)
    worker = start()
    rows = _notifications(alice, "kills")
    _more_drains("kills")
    caught: set[str] = set()
    struck: set[str] = set()  # sends a kill interrupted (its row left ``sending`` by a dead process)
    kills = 0

    for threshold, victim in ((200, "whole_worker"), (450, "pool_child"), (700, "whole_worker")):
        wait_until(lambda: _sent() >= threshold, timeout=120, interval=0.01)  # noqa: B023
        # A message whose last bytes left before the kill is accepted by the server just after it:
        # still in the window (accepted, never recorded), so the server gets a moment to answer
        # before the window is counted.
        if victim == "whole_worker":
            worker.kill_group()
            worker.wait(timeout=10)
            time.sleep(ACCEPT_SETTLE_SECONDS)
            caught |= _caught_in_the_window(smtp_server)  # every sender is dead: exact
            struck |= _sending()
            worker = start()
        else:
            child = worker.child_pids()[0]
            worker.kill_pid(child)
            at_kill = _sending()
            time.sleep(1.0)  # the live processes commit what they were sending; the dead child cannot
            struck |= at_kill & _sending()
            caught |= at_kill & _caught_in_the_window(smtp_server)
        kills += 1

    _settle(broker_redis, timeout=180)

    lost, duplicated = _report(smtp_server, rows)
    print(  # noqa: T201
        f"[email, {kills} kills] {COUNT} sends: lost {lost}, duplicated {duplicated}, rows a kill "
        f"left sending {len(struck)}, of them caught between accept and commit {len(caught)}; "
        f"drain messages pushed back by the journal sweep {journal_sweeps()}"
    )
    assert struck  # the kills struck sends in flight, and those were finished by another run
    assert _sent() == COUNT
    assert lost == 0
    assert duplicated <= len(caught)
    assert len(smtp_server.message_ids()) == COUNT + duplicated
