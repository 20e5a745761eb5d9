"""Email sends reuse the worker process's SMTP connection (``notifications.mail_connection``):
a burst goes over one connection, and a connection the server closed is reopened without
losing or repeating a message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope

from notifications import mail_connection
from notifications.models import EmailNotification
from notifications.services.email_drain import emails_drain
from notifications.tests.conftest import smtp_serving
from notifications.tests.factories import notifications_make

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(30)]


class SessionsHandler:
    """Records (client address, Message-ID) per accepted message; ``mail_answers`` (a queue)
    answers the next MAIL commands; ``drop_after_accept`` closes the connection right after
    the next message was accepted."""

    def __init__(self) -> None:
        self.received: list[tuple[Any, str]] = []
        self.mail_answers: list[str] = []
        self.drop_after_accept = False

    async def handle_MAIL(  # noqa: N802 (aiosmtpd hook names)
        self, server: Any, session: Any, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_answers:
            return self.mail_answers.pop(0)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:  # noqa: N802
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        header = next(line for line in content.split(b"\r\n") if line.lower().startswith(b"message-id:"))
        self.received.append((session.peer, header.split(b":", 1)[1].strip().decode()))
        if self.drop_after_accept:
            self.drop_after_accept = False
            asyncio.get_running_loop().call_soon(server.transport.close)  # after the 250 is written
        return "250 Message accepted for delivery"

    def connections(self) -> int:
        return len({peer for peer, _ in self.received})

    def message_ids(self) -> list[str]:
        return [message_id for _, message_id in self.received]


@pytest.fixture
def sessions(settings: Any) -> Iterator[SessionsHandler]:
    handler = SessionsHandler()
    with smtp_serving(handler, settings):
        mail_connection.mail_connection_close()
        yield handler
        mail_connection.mail_connection_close()


_made = iter(range(1_000_000))


def _notifications(tenant, count: int) -> list[EmailNotification]:
    return notifications_make(tenant, f"connection-{next(_made)}", count)


def _state(row: EmailNotification) -> str:
    row.refresh_from_db()
    return row.state


def test_the_sends_of_a_burst_share_one_connection(alice, sessions) -> None:
    rows = _notifications(alice, 5)

    assert emails_drain() == 5

    assert sorted(sessions.message_ids()) == sorted(row.message_id for row in rows)
    assert sessions.connections() == 1


def test_a_connection_the_server_dropped_between_two_sends_is_reopened_and_nothing_is_lost_or_sent_twice(
    alice, sessions
) -> None:
    (first,) = _notifications(alice, 1)
    sessions.drop_after_accept = True
    assert emails_drain() == 1
    time.sleep(0.2)  # the server's close has reached our socket
    (second,) = _notifications(alice, 1)

    assert emails_drain() == 1

    assert sessions.message_ids() == [first.message_id, second.message_id]
    assert sessions.connections() == 2
    second.refresh_from_db()
    assert (second.state, second.attempts, second.last_error) == ("sent", 1, "")


def test_a_421_closing_answer_on_a_reused_connection_is_sent_again_on_a_new_one(alice, sessions) -> None:
    (first,) = _notifications(alice, 1)
    assert emails_drain() == 1
    sessions.mail_answers.append("421 4.4.2 Idle for too long, closing")
    (second,) = _notifications(alice, 1)

    assert emails_drain() == 1

    assert sessions.message_ids() == [first.message_id, second.message_id]
    assert sessions.connections() == 2


def test_a_421_on_a_new_connection_is_a_failure_to_retry_not_a_loop(alice, sessions) -> None:
    (row,) = _notifications(alice, 1)
    sessions.mail_answers.append("421 4.3.2 Not accepting messages now")

    assert emails_drain() == 0

    row.refresh_from_db()
    assert (row.state, row.attempts, sessions.message_ids()) == ("pending", 1, [])
    EmailNotification.objects.filter(pk=row.pk).update(next_attempt_at=row.created_at)  # its retry came due
    assert emails_drain() == 1
    assert sessions.message_ids() == [row.message_id]


def test_a_connection_idle_too_long_is_not_trusted(alice, sessions, monkeypatch) -> None:
    monkeypatch.setattr(mail_connection, "IDLE_SECONDS", 0.0)
    _notifications(alice, 2)

    assert emails_drain() == 2

    assert sessions.connections() == 2


def test_a_connection_opened_before_a_fork_is_left_to_the_parent(alice, sessions, monkeypatch) -> None:
    _notifications(alice, 1)
    assert emails_drain() == 1
    monkeypatch.setattr(mail_connection.os, "getpid", lambda: -1)  # as in a pool process forked after the send
    (second,) = _notifications(alice, 1)

    assert emails_drain() == 1

    assert (_state(second), sessions.connections()) == ("sent", 2)
