"""Is the broker Redis one that keeps what it was given? Checked when a process starts.

A broker that shares its instance with the cache evicts messages when the cache fills
(the cache runs ``allkeys-lru``); one without ``noeviction`` evicts them itself; one
without the append-only file loses every queued message when it restarts. Each of these
turns a ``202`` into lost work, silently. So every process that hands work to the broker
or takes it from it — the web (events answered 202), the workers, the relay — checks
the broker when it starts (``broker_config_enforce``), and with
``BROKER_CONFIG_CHECK=refuse`` (the default) does not start on a broker that fails:

* ``same_instance_as_cache``: ``CELERY_BROKER_URL`` and ``REDIS_URL`` name the same host
  and port (two database numbers of one server are one instance, one memory limit);
* ``eviction_policy``: ``maxmemory-policy`` is not ``noeviction``;
* ``no_append_only``: ``appendonly`` is off.

``warn`` logs the same problems and starts (the test suite and the benchmarks run cache
and broker as two databases of one server; so does the embedded demo); ``off`` skips the
check. A broker that does not answer at start cannot be judged: the process starts (it
would retry the broker anyway) and the check runs again at the next ``/readyz``. Only
Redis brokers are checked. The settings are read with ``INFO``, which managed Redis
services allow where ``CONFIG GET`` is disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
import structlog
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from workers.broker import broker_is_redis

log = structlog.get_logger(__name__)

MODES = ("refuse", "warn", "off")
CHECK_TIMEOUT_SECONDS = 1.0
DEFAULT_PORT = 6379


class BrokerConfigRefusedError(ImproperlyConfigured):
    """The broker would lose work and ``BROKER_CONFIG_CHECK=refuse``: the process must stop
    (the web lets it propagate, so gunicorn halts on a worker that cannot boot; the
    worker and the relay exit with status 1, ``broker_config_exit``)."""


@dataclass(frozen=True)
class BrokerConfigState:
    """``problems`` are codes from the module docstring; ``checked`` is False when the
    broker did not answer (or is not Redis, or the check is off)."""

    checked: bool
    problems: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.problems) and settings.BROKER_CONFIG_CHECK == "refuse"


_state: BrokerConfigState | None = None


def _instance(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or "localhost").lower(), parts.port or DEFAULT_PORT


def broker_config_problems(info: dict[str, object]) -> tuple[str, ...]:
    """The problems of a broker whose ``INFO`` (memory and persistence sections) is ``info``."""
    problems = []
    if _instance(settings.CELERY_BROKER_URL) == _instance(settings.REDIS_URL):
        problems.append("same_instance_as_cache")
    if info.get("maxmemory_policy") != "noeviction":
        problems.append("eviction_policy")
    if str(info.get("aof_enabled")) != "1":
        problems.append("no_append_only")
    return tuple(problems)


def _read_info() -> dict[str, object]:
    client = redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        return {**client.info("memory"), **client.info("persistence")}
    finally:
        client.close()


def broker_config_state() -> BrokerConfigState:
    """This process's verdict on the broker, asked once it answered (kept for the process's life)."""
    global _state
    if _state is not None and _state.checked:
        return _state
    if settings.BROKER_CONFIG_CHECK == "off" or not broker_is_redis():
        _state = BrokerConfigState(checked=False)
        return _state
    try:
        info = _read_info()
    except redis.RedisError as error:
        log.warning("broker_config_unchecked", error=f"{type(error).__name__}: {error}")
        return BrokerConfigState(checked=False)
    _state = BrokerConfigState(checked=True, problems=broker_config_problems(info))
    return _state


def broker_config_enforce(process: str) -> BrokerConfigState:
    """Check the broker as ``process`` starts: log each problem, and raise
    :class:`BrokerConfigRefusedError` when ``BROKER_CONFIG_CHECK=refuse`` and there is one."""
    state = broker_config_state()
    for problem in state.problems:
        log.error("broker_config_problem", problem=problem, process=process, mode=settings.BROKER_CONFIG_CHECK)
    if state.refused:
        log.critical("broker_config_refused", process=process, problems=list(state.problems))
        raise BrokerConfigRefusedError(
            f"{process}: the broker Redis would lose work ({', '.join(state.problems)}); see README "
            "'Broker and cache are two Redis instances', or set BROKER_CONFIG_CHECK=warn"
        )
    return state


def broker_config_exit(process: str) -> None:
    """:func:`broker_config_enforce` for a process that stops with exit status 1 and the reason."""
    try:
        broker_config_enforce(process)
    except BrokerConfigRefusedError as error:
        raise SystemExit(str(error)) from error


def reset_for_tests() -> None:
    global _state
    _state = None
