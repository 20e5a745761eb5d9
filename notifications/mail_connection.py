"""One open email connection per worker process, reused by the sends of a burst.

Django's backends open a connection for each ``EmailMessage.send()``: for SMTP that is a
TCP connect, the greeting, EHLO (STARTTLS and AUTH where configured) and QUIT around the
four commands of the message itself. :func:`mail_send` keeps the backend open between
sends instead, in this process (and thread) only: a connection opened before a fork
belongs to the parent and is dropped, never shared.

A connection idle for more than ``IDLE_SECONDS`` is closed and opened afresh rather than
trusted: servers drop idle clients (aiosmtpd and Postfix after 300 s, some providers
after seconds), and a fresh connect costs less than a probe (NOOP) on every send.

A reused connection that turns out dead — the server closed it (``SMTPServerDisconnected``,
a reset), or said ``421`` (closing) — is reopened and the message sent once more on the
new one, right away. That never loses a message (a failure on the new connection is raised
as any other), and duplicates nothing the normal retry would not: a server drops a
connection between commands, so a message it had accepted was answered ``250`` before, and
the one window left (accepted, then dropped before the ``250`` reached us) is the same one
every re-send has, which the Message-ID lets the receiver close. After any other error the
connection is closed, so the next send never inherits a conversation in an unknown state.
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend

from notifications.smtp_errors import CLOSING_CODE

IDLE_SECONDS = 5.0

_local = threading.local()


@dataclass
class _Open:
    backend: BaseEmailBackend
    key: tuple[object, ...]
    pid: int
    used_at: float


def _settings_key() -> tuple[object, ...]:
    """What the open connection was made for: a change of any (a test's SMTP server) reopens it."""
    return tuple(
        getattr(settings, name, None)
        for name in ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_USE_TLS", "EMAIL_USE_SSL")
    )


def _current() -> _Open | None:
    opened: _Open | None = getattr(_local, "opened", None)
    if opened is None:
        return None
    if opened.pid != os.getpid():
        _local.opened = None  # the parent's socket: not ours to use or to close
        return None
    if opened.key != _settings_key() or time.monotonic() - opened.used_at > IDLE_SECONDS:
        mail_connection_close()
        return None
    return opened


def _open() -> _Open:
    backend = get_connection(fail_silently=False)
    try:
        backend.open()
    except BaseException:
        backend.close()  # a connection half made (refused STARTTLS or AUTH)
        raise
    _local.opened = _Open(backend=backend, key=_settings_key(), pid=os.getpid(), used_at=time.monotonic())
    return _local.opened


def _dead(error: BaseException) -> bool:
    """The server closed the connection: it was gone before this message was accepted."""
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code == CLOSING_CODE
    return isinstance(error, (smtplib.SMTPServerDisconnected, ConnectionError))


def _send_on(opened: _Open, message: EmailMessage) -> None:
    opened.backend.send_messages([message])
    opened.used_at = time.monotonic()


def mail_send(message: EmailMessage) -> None:
    """Send ``message`` on this process's open connection (opened when there is none).

    Raises what the backend raises (``smtplib.SMTPException``, ``OSError``) and closes the
    connection then, except that a reused connection found dead is reopened and the
    message sent once more on the new one (see the module's docstring)."""
    opened = _current()
    try:
        if opened is not None:
            try:
                _send_on(opened, message)
                return
            except Exception as error:
                if not _dead(error):
                    raise
                mail_connection_close()
        _send_on(_open(), message)
    except BaseException:
        mail_connection_close()
        raise


def mail_connection_close() -> None:
    """Close this process's connection, if open (QUIT when the server still listens)."""
    opened: _Open | None = getattr(_local, "opened", None)
    _local.opened = None
    if opened is None or opened.pid != os.getpid():
        return
    with contextlib.suppress(OSError, smtplib.SMTPException):  # the server is gone already: the socket closes anyway
        opened.backend.close()
