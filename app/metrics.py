"""``GET /metrics``: Prometheus text behind a bearer token (``METRICS_TOKEN``).

Task counters and run times are kept in one shared store — hashes in the broker
Redis, which never evicts — not in process memory: web processes, worker main
processes and every prefork pool child add to the same numbers, on any number
of hosts, so whichever web process is scraped reports the cluster-wide totals
(scrape one instance, or do not ``sum`` across instances). Each finished task
adds to an in-process tally that a thread writes once a second (one pipelined round trip),
so counting costs the task no round trip. Gauges (queue depth and age, outbox backlog,
open dead letters) are read at scrape time. Exposition is prometheus-client's.
"""

from __future__ import annotations

import hmac
import math
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import redis
import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from app.errors import ApiError, error_response
from app.health import dependency_states
from workers.broker import broker_redis, queue_stats
from workers.selectors import deadletter_open_count, outbox_backlog

log = structlog.get_logger(__name__)

TASKS_KEY = "sf:metrics:tasks"
RUNTIME_KEY = "sf:metrics:runtime"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, math.inf)
OUTCOMES = ("succeeded", "retried", "failed", "dead_lettered")
FLUSH_SECONDS = 1.0


def _bucket(duration: float) -> str:
    return next(_label(le) for le in BUCKETS if duration <= le)


def _label(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)


class _Pending:
    """This process's counts not yet written to the shared store.

    Writing them from a daemon thread once a second keeps the store off the task's
    path: a task costs a dict update here, not a round trip. A process killed with
    ``kill -9`` loses at most its last second of counts.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.counts: Counter[tuple[str, str]] = Counter()
        self.sums: defaultdict[str, float] = defaultdict(float)
        self.forget: list[str] = []
        self.pid = 0

    def add(self, task_name: str, outcomes: tuple[str, ...], duration: float | None, forget: str | None) -> None:
        with self.lock:
            for outcome in outcomes:
                self.counts[TASKS_KEY, f"{task_name}|{outcome}"] += 1
            if duration is not None:
                self.counts[RUNTIME_KEY, f"{task_name}|{_bucket(duration)}"] += 1
                self.sums[f"{task_name}|sum"] += duration
            if forget:
                self.forget.append(forget)
            if self.pid != os.getpid():  # first use in this process (or a forked child): start its writer
                self.pid = os.getpid()
                threading.Thread(target=self._write_forever, name="metrics-writer", daemon=True).start()

    def _write_forever(self) -> None:
        while True:
            self.wake.wait(FLUSH_SECONDS)
            self.wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write what is pending in one round trip; on a Redis error keep it for the next try."""
        with self.lock:
            counts, sums, forget = self.counts, self.sums, self.forget
            self.counts, self.sums, self.forget = Counter(), defaultdict(float), []
        if not (counts or sums or forget):
            return
        try:
            with broker_redis().pipeline(transaction=False) as pipe:
                for (key, field), value in counts.items():
                    pipe.hincrby(key, field, value)
                for field, total in sums.items():
                    pipe.hincrbyfloat(RUNTIME_KEY, field, total)
                if forget:
                    pipe.delete(*forget)
                pipe.execute()
        except (redis.RedisError, OSError) as error:
            log.warning("metrics_write_failed", error=str(error))
            with self.lock:
                self.counts.update(counts)
                self.forget.extend(forget)
                for field, total in sums.items():
                    self.sums[field] += total


_pending = _Pending()


def task_outcome(task_name: str, outcomes: tuple[str, ...], duration: float | None, forget: str | None = None) -> None:
    """Count ``outcomes`` of one run of ``task_name`` (and its run time) for ``/metrics``.

    ``forget`` names a broker key to delete with the next write (a delivery counter that
    is done with). Never raises and never waits: the write happens within a second.
    """
    _pending.add(task_name, outcomes, duration, forget)


def metrics_flush() -> None:
    """Write this process's pending counts now (a worker process about to exit)."""
    _pending.flush()


def _split(raw: dict[bytes, bytes]) -> Iterator[tuple[str, str, bytes]]:
    for field, value in raw.items():
        name, _, label = field.decode().rpartition("|")
        yield name, label, value


class StorefabricCollector:
    """Reads the shared store, the broker and the database at scrape time."""

    def collect(self) -> Iterator[Metric]:
        client = broker_redis()
        try:
            tasks_raw, runtime_raw = client.hgetall(TASKS_KEY), client.hgetall(RUNTIME_KEY)
            stats = queue_stats()
            broker_up = 1.0
        except (redis.RedisError, OSError) as error:
            log.warning("metrics_broker_unreachable", error=str(error))
            tasks_raw, runtime_raw, stats, broker_up = {}, {}, [], 0.0
        yield GaugeMetricFamily("storefabric_broker_up", "1 when the broker answered this scrape.", value=broker_up)
        yield self._dependencies()
        yield self._tasks(tasks_raw)
        yield self._runtime(runtime_raw)
        depth = GaugeMetricFamily("storefabric_queue_depth", "Messages waiting in the queue.", labels=["queue"])
        age = GaugeMetricFamily(
            "storefabric_queue_oldest_age_seconds", "Age of the next message of the queue.", labels=["queue"]
        )
        for stat in stats:
            depth.add_metric([stat.name], stat.depth)
            age.add_metric([stat.name], stat.oldest_age_seconds or 0.0)
        yield depth
        yield age
        backlog = outbox_backlog()
        outbox = GaugeMetricFamily("storefabric_outbox_backlog", "Outbox rows not done yet.", labels=["status"])
        for status, count in backlog.counts.items():
            outbox.add_metric([status], count)
        yield outbox
        yield GaugeMetricFamily(
            "storefabric_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox row not yet published.",
            value=backlog.oldest_pending_age_seconds or 0.0,
        )
        yield GaugeMetricFamily(
            "storefabric_dead_letters_open", "Dead letters not replayed.", value=deadletter_open_count()
        )

    @staticmethod
    def _dependencies() -> Metric:
        """The readiness probe's view of each dependency (``app.health``: which of them make a
        process unready is decided there)."""
        up = GaugeMetricFamily(
            "storefabric_dependency_up", "1 when the dependency answered this scrape.", labels=["dependency"]
        )
        for name, answered in dependency_states().items():
            up.add_metric([name], 1.0 if answered else 0.0)
        return up

    def _tasks(self, raw: dict[bytes, bytes]) -> Metric:
        family = CounterMetricFamily(
            "storefabric_tasks", "Task runs by outcome (all processes, all hosts).", labels=["task", "outcome"]
        )
        for task, outcome, value in sorted(_split(raw)):
            family.add_metric([task, outcome], int(value))
        return family

    def _runtime(self, raw: dict[bytes, bytes]) -> Metric:
        family = HistogramMetricFamily("storefabric_task_duration_seconds", "Run time of task bodies.", labels=["task"])
        per_task: dict[str, dict[str, float]] = {}
        for task, label, value in _split(raw):
            per_task.setdefault(task, {})[label] = float(value)
        for task, values in sorted(per_task.items()):
            cumulative, buckets = 0.0, []
            for le in BUCKETS:
                cumulative += values.get(_label(le), 0.0)
                buckets.append((_label(le), cumulative))
            family.add_metric([task], buckets, values.get("sum", 0.0))
        return family


def _authorized(request: HttpRequest) -> None:
    token = settings.METRICS_TOKEN
    if not token:
        raise ApiError("permission_denied", "Metrics are disabled: set METRICS_TOKEN.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError("not_authenticated", "Send Authorization: Bearer <METRICS_TOKEN>.")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError("invalid_key", "The metrics token is wrong.")


def metrics_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Prometheus exposition of the shared counters and the current gauges."""
    try:
        if request.method not in ("GET", "HEAD"):
            raise ApiError("method_not_allowed")
        _authorized(request)
    except ApiError as error:
        return error_response(error)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StorefabricCollector())  # type: ignore[arg-type]
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
