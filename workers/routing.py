"""The one table of queues, and of the worker groups (Procfile processes) serving them.

Every task names its queue from here. Queues are split by latency class so a
backlog in one never starves another. ``WORKER_GROUPS`` mirrors the Procfile's
worker lines (``workers/tests/test_worker_groups.py`` holds them together); the
visibility-timeout check (``workers.limits``) reads each group's prefetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Queue(StrEnum):
    DEFAULT = "default"
    PRICING = "pricing"
    INGEST = "ingest"
    EMAIL = "email"
    WEBHOOKS = "webhooks"
    BACKUPS = "backups"
    MAINTENANCE = "maintenance"


ALL_QUEUES: tuple[str, ...] = tuple(queue.value for queue in Queue)


LONG_QUEUES: frozenset[Queue] = frozenset({Queue.BACKUPS, Queue.MAINTENANCE})
"""Queues whose tasks may run for minutes. Their worker groups prefetch one message per
pool process: a prefetched message waits, unacknowledged, behind the tasks running before
it, and its visibility clock runs from the prefetch."""


@dataclass(frozen=True)
class WorkerGroup:
    """One Procfile worker process: the queues it serves and its ``--prefetch-multiplier``."""

    process: str
    queues: tuple[Queue, ...]
    prefetch_multiplier: int


WORKER_GROUPS: tuple[WorkerGroup, ...] = (
    WorkerGroup("worker_realtime", (Queue.PRICING, Queue.DEFAULT), prefetch_multiplier=1),
    WorkerGroup("worker_bulk", (Queue.INGEST,), prefetch_multiplier=4),
    # Deliveries may wait 15 s on a slow endpoint: apart from ingestion, one message per process.
    WorkerGroup("worker_notify", (Queue.EMAIL, Queue.WEBHOOKS), prefetch_multiplier=1),
    WorkerGroup("worker_backups", (Queue.BACKUPS, Queue.MAINTENANCE), prefetch_multiplier=1),
)


def worker_group_of(queue: str, groups: tuple[WorkerGroup, ...] = WORKER_GROUPS) -> WorkerGroup | None:
    """The group of ``groups`` serving ``queue``, or ``None`` when none does."""
    return next((group for group in groups if queue in group.queues), None)
