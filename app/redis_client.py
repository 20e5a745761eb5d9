"""The cache Redis as the hot path uses it: short timeouts, no retries, a breaker.

An outage costs one timeout per ``REDIS_BREAKER_COOLDOWN`` seconds per process,
not one per request: after a failure every call fails fast with
:class:`RedisUnavailableError` until the cooldown ends, then one call probes again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
import structlog
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RedisUnavailableError(Exception):
    """The cache Redis did not answer (or the breaker is open)."""


class CircuitBreaker:
    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
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
            log.warning("redis_breaker_open", error=str(error), cooldown_s=self.cooldown)

    def record_success(self) -> None:
        if self._open_until:
            with self._lock:
                self._open_until = 0.0
            log.info("redis_breaker_closed")


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
    except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
        guard.record_failure(error)
        raise RedisUnavailableError(str(error)) from error
    guard.record_success()
    return result


def cache_key(*parts: Any) -> str:
    """A namespaced key: ``<REDIS_KEY_PREFIX>:part:part``."""
    return ":".join([settings.REDIS_KEY_PREFIX, *map(str, parts)])


def reset_for_tests() -> None:
    """Forget the client and breaker (settings changed under a test)."""
    global _client, _breaker
    _client = None
    _breaker = None
