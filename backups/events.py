"""``backup.completed`` / ``backup.failed``: announced through the outbox when a backup ends.

Payload (documented in backups/README.md)::

    {"backup_id": 12, "retailer_id": 3, "state": "done" | "failed", "files": 1200,
     "bytes": 52428800, "new_bytes": 1048576, "duration_seconds": 12.5,
     "error_code": "" | "repository_full" | …, "error_message": ""}

``key`` is ``backup:<id>`` and ``version`` 1: a backup ends once.
"""

from __future__ import annotations

from typing import Any

from backups.models import Backup
from workers.outbox import outbox_announce

COMPLETED = "backup.completed"
FAILED = "backup.failed"


def backup_event_payload(backup: Backup) -> dict[str, Any]:
    duration = None
    if backup.finished_at and backup.started_at:
        duration = round((backup.finished_at - backup.started_at).total_seconds(), 3)
    return {
        "backup_id": backup.pk,
        "retailer_id": backup.retailer_id,
        "state": backup.state,
        "files": backup.files_done,
        "bytes": backup.bytes_done,
        "new_bytes": backup.bytes_new,
        "duration_seconds": duration,
        "error_code": backup.error_code,
        "error_message": backup.error_message,
    }


def backup_ended_announce(backup: Backup) -> None:
    """Inside the transaction that ends ``backup``."""
    topic = COMPLETED if backup.state == Backup.State.DONE else FAILED
    outbox_announce(topic=topic, payload=backup_event_payload(backup), key=f"backup:{backup.pk}", version=1)
