"""The cache Redis as the hot path uses it: short timeouts, no retries, a breaker.

An outage costs one timeout per ``REDIS_BREAKER_COOLDOWN`` seconds per process,
not one per request: after a failure every call fails fast with
:class:`RedisUnavailableError` until the cooldown ends, then one call probes again.

A failure is anything redis-py raises, error replies included: a server out of memory
under ``noeviction`` (``OOM command not allowed``), a read-only replica (``READONLY``), a
failed snapshot (``MISCONF``) or an old server refusing a command (``EXPIRE … NX`` before
Redis 7) fails the hot path's writes just as a dead server does, and the callers' answer is
the same: stale prices from PostgreSQL, the rate limit open.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import hiredis
import redis
import structlog
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RedisUnavailableError(Exception):
    """The cache Redis did not answer, answered an error, or the breaker is open."""


class CircuitBreaker:
    """Open for ``cooldown`` seconds after a failure; ``name`` prefixes its log lines."""

    def __init__(self, cooldown: float, name: str = "redis") -> None:
        self.cooldown = cooldown
        self.name = name
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def record_failure(self, error: BaseException) -> None:
        with self._lock:
            was_closed = not self.is_open
            self._open_until = time.monotonic() + self.cooldown
        if was_closed:
            log.warning(f"{self.name}_breaker_open", error=str(error), cooldown_s=self.cooldown)

    def record_success(self) -> None:
        if self._open_until:
            with self._lock:
                self._open_until = 0.0
            log.info(f"{self.name}_breaker_closed")


_client: redis.Redis | None = None
_breaker: CircuitBreaker | None = None


def cache_redis() -> redis.Redis:
    """The process's client for the cache Redis (fork-safe: redis-py reconnects per pid)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=settings.REDIS_CONNECT_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
    return _client


def breaker() -> CircuitBreaker:
    global _breaker
    if _breaker is None:
        _breaker = CircuitBreaker(settings.REDIS_BREAKER_COOLDOWN)
    return _breaker


def redis_guarded(call: Callable[[redis.Redis], T]) -> T:
    """Run ``call`` against the cache Redis, or raise :class:`RedisUnavailableError` fast."""
    guard = breaker()
    if guard.is_open:
        raise RedisUnavailableError("circuit open")
    try:
        result = call(cache_redis())
    except (redis.RedisError, OSError) as error:  # connection errors, timeouts and error replies alike
        guard.record_failure(error)
        raise RedisUnavailableError(str(error)) from error
    guard.record_success()
    return result


# redis-py 8's Connection; typed Any because the types-redis 4.6 stubs predate its
# ``is_connected`` and take only ``str`` payloads.
Connection = Any


class _ThreadConnections(threading.local):
    """A client's connections owned by threads: one per thread, made in this process."""

    pid: int = 0
    connection: Connection | None = None


# Weak: a client that is replaced (an outage reset, settings changed under a test) takes its
# threads' connections with it; a connection closes its socket when it is collected.
_owned: weakref.WeakKeyDictionary[redis.Redis, _ThreadConnections] = weakref.WeakKeyDictionary()
_owned_lock = threading.Lock()


def _thread_connection(client: redis.Redis) -> Connection:
    """This thread's connection to ``client``'s server (connected on first use)."""
    owned = _owned.get(client)
    if owned is None:
        with _owned_lock:
            owned = _owned.setdefault(client, _ThreadConnections())
    if owned.connection is None or owned.pid != os.getpid():
        pool = client.connection_pool
        owned.pid, owned.connection = os.getpid(), pool.connection_class(**pool.connection_kwargs)
    return owned.connection


def _exchange(connection: Connection, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    try:
        # hiredis packs in C: a quarter of the CPU of redis-py's packer for the hot path's commands
        connection.send_packed_command([b"".join([hiredis.pack_command(command) for command in commands])])
        # The connection's parser, not ``Connection.read_response``: its bookkeeping (an error
        # text naming the host, built before every read; health-check times) cost ~1.3 us a
        # reply, five replies a price lookup with the per-client limit (bench/rate_limit_cost.py).
        # Its error mapping is kept: a timeout stays a timeout, a reset connection is a
        # ConnectionError (which ``round_trip`` retries once on a fresh connection).
        parser = connection._parser
        replies = [parser.read_response(disable_decoding=False) for _ in commands]
    except TimeoutError as error:
        connection.disconnect()
        raise redis.TimeoutError(str(error)) from error
    except OSError as error:
        connection.disconnect()
        raise redis.ConnectionError(str(error)) from error
    except BaseException:
        connection.disconnect()  # unread replies may be left on the socket: never reuse it
        raise
    for reply in replies:  # every reply was read: the connection stays usable
        if isinstance(reply, redis.ResponseError):
            raise reply
    return replies


def round_trip(client: redis.Redis, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` in one write on this thread's own connection and read their replies.

    A pipeline without redis-py's ``Pipeline`` object and without a pool checkout, whose
    readability poll and bookkeeping cost as much CPU as the exchange itself (~17 us of
    ~34 us a round trip, measured on our 2-core machine). A connection the server closed
    while it sat idle (a Redis restart) fails with a ``ConnectionError``; it is replaced and
    the commands sent once more, so callers send only what is harmless to repeat: reads, a
    rate counter, a journaled publish (its task runs behind an idempotency barrier). A
    timeout is never retried: the caller's breaker or 503 takes over.
    """
    connection = _thread_connection(client)
    was_connected = connection.is_connected
    try:
        return _exchange(connection, commands)
    except redis.ConnectionError:
        if not was_connected:
            raise
    return _exchange(connection, commands)


def cache_key(*parts: Any) -> str:
    """A namespaced key: ``<REDIS_KEY_PREFIX>:part:part``."""
    return ":".join([settings.REDIS_KEY_PREFIX, *map(str, parts)])


def reset_for_tests() -> None:
    """Forget the client and breaker (settings changed under a test)."""
    global _client, _breaker
    _client = None
    _breaker = None
