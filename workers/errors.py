"""What a task's failure means: retry it (transient) or stop (permanent).

Only transient errors retry: timeouts, connection errors, a 5xx from a remote,
a database that went away. A bug, a 4xx or bad input fails the same way every
time, so it goes straight to the dead letters instead of retrying in a storm.
"""

from __future__ import annotations

import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError


class TransientError(Exception):
    """Raise from a task body for a failure worth retrying (e.g. an HTTP 503)."""


class PermanentError(Exception):
    """Raise from a task body for a failure no retry can fix (e.g. an HTTP 400)."""


class PoisonMessageError(PermanentError):
    """The message was delivered more times than allowed: its runs keep killing the worker."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,
    TimeoutError,
    redis.ConnectionError,
    redis.TimeoutError,
    OperationalError,
    InterfaceError,
    BrokerOperationalError,
)


def is_transient(error: BaseException, extra: tuple[type[BaseException], ...] = ()) -> bool:
    """True when ``error`` is worth a retry. A soft time limit is not: the next try would
    run out of time the same way, so it becomes a dead letter an operator can replay."""
    if isinstance(error, (PermanentError, SoftTimeLimitExceeded)):
        return False
    return isinstance(error, TRANSIENT_ERRORS + extra)
