"""PostgreSQL away: which errors mean it, a per-process breaker, a deadline, and the 503.

The hot path promises no SQL in steady state, and keeps serving from Redis while the
database is stopped or hung. Three tools make that hold:

* :func:`database_unreachable` tells "the database is away" (refused, lost or timed-out
  connections, a server shutting down: retry later) from errors of the statement itself;
* :func:`database_breaker` opens for ``DB_BREAKER_COOLDOWN`` seconds after such an error,
  so an outage costs each web process one failed attempt per cooldown, not one per request;
* :func:`sql_deadline` bounds the SQL a hot-path request runs on its own connection. A
  hung server (``SIGSTOP``, a frozen VM) never answers, and neither its statement timeout
  (enforced by the stopped server) nor TCP keepalives (the kernel still acknowledges) end
  the wait; the deadline shuts the socket down, which libpq reports as a lost connection.

:func:`hot_path_sql` puts the three together for the key cache and the price lookup.
Every request behind the hot routes runs under :func:`sql_deadline` too, with the longer
``DB_REQUEST_TIMEOUT`` (:class:`RequestSqlDeadlineMiddleware`): a hung server costs such a
request that long and a 503, instead of a web thread held until the server wakes.

Every other endpoint answers an unreachable or failing database with a JSON 503
``database_unavailable`` and ``Retry-After`` (``app.errors.database_unavailable_error``, in
the DRF exception handler and :class:`DatabaseUnavailableMiddleware`), never a 500.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import structlog
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse

from app.deadlines import Deadline, deadline_call
from app.errors import DATABASE_ERRORS, database_unavailable_error, error_response
from app.redis_client import CircuitBreaker

log = structlog.get_logger(__name__)

T = TypeVar("T")

# SQLSTATEs of a server that is going away or not yet back: class 08 (connection exception),
# admin_shutdown, crash_shutdown, cannot_connect_now (starting up or shutting down).
UNREACHABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def database_unreachable(error: BaseException) -> bool:
    """True when ``error`` says the database cannot be reached right now (not that a
    statement failed): a client-side connection error (no SQLSTATE), class 08, or a
    server shutting down or starting up. Such an error passes by itself; a retry of the
    same work later succeeds."""
    if isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    cause: Any = error.__cause__
    if not hasattr(cause, "sqlstate"):
        return False  # not from psycopg (SQLite's "no such table" is an OperationalError too)
    sqlstate: str | None = cause.sqlstate
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in UNREACHABLE_SQLSTATES


_breaker: CircuitBreaker | None = None


def database_breaker() -> CircuitBreaker:
    """This process's breaker for hot-path SQL (open: skip SQL, serve what Redis and the
    key cache hold)."""
    global _breaker
    if _breaker is None:
        _breaker = CircuitBreaker(settings.DB_BREAKER_COOLDOWN, name="database")
    return _breaker


def database_breaker_reset() -> None:
    """Forget the breaker (settings changed under a test)."""
    global _breaker
    _breaker = None


class _Watchdog:
    """Shuts down the socket of one connection if the guarded block outlives its deadline."""

    def __init__(self, wrapper: Any, seconds: float) -> None:
        self.wrapper = wrapper  # the caller's: ``connections`` is thread-local, the timer's own is unopened
        self.seconds = seconds
        self.fired = False
        self._armed = True
        self._lock = threading.Lock()
        self._deadline: Deadline | None = None

    def __enter__(self) -> _Watchdog:
        self._deadline = deadline_call(self.seconds, self._fire)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._armed = False
        if self._deadline is not None:
            self._deadline.cancel()

    def _fire(self) -> None:
        with self._lock:
            if not self._armed:
                return
            pgconn = getattr(self.wrapper.connection, "pgconn", None)  # psycopg 3; SQLite has no socket
            if pgconn is None:
                return
            with suppress(Exception):  # closed meanwhile: nothing left to cut
                with socket.socket(fileno=os.dup(pgconn.socket)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
                self.fired = True


@contextmanager
def sql_deadline(seconds: float | None = None, alias: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Run the block's SQL with a client-side deadline (``DB_HOT_PATH_TIMEOUT`` by default).

    Past it, the connection's socket is shut down and the waiting query fails with an
    ``OperationalError`` (a lost connection, which Django then discards). The deadline is
    kept by the process's deadlines thread (``app.deadlines``).
    """
    watchdog = _Watchdog(connections[alias], settings.DB_HOT_PATH_TIMEOUT if seconds is None else seconds)
    try:
        with watchdog:
            yield
    finally:
        if watchdog.fired:
            log.warning("sql_deadline_passed", deadline_s=watchdog.seconds)


def hot_path_sql(call: Callable[[], T]) -> T:
    """Run ``call`` (SQL of the hot path) under :func:`sql_deadline` and the breaker.

    Raises the 503 ``ApiError`` at once while the breaker is open, and opens it when the
    database fails: one slow or failed attempt per process and cooldown, not per request.
    """
    breaker = database_breaker()
    if breaker.is_open:
        raise database_unavailable_error()
    try:
        with sql_deadline():
            result = call()
    except DATABASE_ERRORS as error:
        breaker.record_failure(error)
        raise database_unavailable_error() from error
    breaker.record_success()
    return result


class DatabaseUnavailableMiddleware:
    """A view that hit an unreachable or failing database answers the JSON 503, not a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_ERRORS):
            log.warning("database_unavailable", path=request.path, error=f"{type(exception).__name__}: {exception}")
            return error_response(database_unavailable_error())
        return None


class RequestSqlDeadlineMiddleware:
    """The SQL of one request (behind the hot routes) shares a deadline, ``DB_REQUEST_TIMEOUT``.

    Past it the request's connection is cut (:func:`sql_deadline`) and the view's
    ``OperationalError`` answers the JSON 503 ``database_unavailable``. Longer than the hot
    path's: catalog writes and admin pages do more than one key lookup.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with sql_deadline(settings.DB_REQUEST_TIMEOUT):
            return self.get_response(request)
