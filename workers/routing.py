"""The one table of queues. Every task names its queue from here.

Queues are split by latency class so a backlog in one never starves another.
"""

from __future__ import annotations

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
