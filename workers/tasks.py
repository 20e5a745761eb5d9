"""The fabric's own tasks: the event dispatcher, the periodic purges and the journal sweep."""

from __future__ import annotations

from typing import Any

import structlog

from workers.idempotency import idempotency_purge as idempotency_records_purge
from workers.journal import journal_sweep as journal_messages_sweep
from workers.outbox import EVENT_DISPATCH_TASK, EVENTS_DISPATCH_TASK
from workers.reliable import reliable_task
from workers.routing import Queue
from workers.services import outbox_event_dispatch, outbox_events_dispatch
from workers.services import outbox_purge as outbox_rows_purge

log = structlog.get_logger(__name__)


@reliable_task(name=EVENT_DISPATCH_TASK, queue=Queue.DEFAULT, soft_time_limit=60, time_limit=90)
def event_dispatch(*, topic: str, key: str, version: int, payload: dict[str, Any], idempotency_key: str) -> None:
    """Run the subscribers of one outbox event and mark it done, once (see ``outbox_event_dispatch``)."""
    outbox_event_dispatch(topic=topic, key=key, version=version, payload=payload, event_key=idempotency_key)


@reliable_task(name=EVENTS_DISPATCH_TASK, queue=Queue.DEFAULT, soft_time_limit=60, time_limit=90)
def events_dispatch(*, event_keys: list[str], idempotency_key: str) -> None:
    """Run the subscribers of a batch of outbox events, marking each done once (see ``outbox_events_dispatch``)."""
    outbox_events_dispatch(event_keys=event_keys)


@reliable_task(name="workers.outbox_purge", queue=Queue.MAINTENANCE, soft_time_limit=600, time_limit=660)
def outbox_purge(*, idempotency_key: str) -> None:
    """Delete finished outbox rows older than OUTBOX_RETENTION_SECONDS. Idempotent."""
    log.info("outbox_purged", rows=outbox_rows_purge())


@reliable_task(name="workers.idempotency_purge", queue=Queue.MAINTENANCE, soft_time_limit=600, time_limit=660)
def idempotency_purge(*, idempotency_key: str) -> None:
    """Forget idempotency claims older than IDEMPOTENCY_WINDOW_SECONDS. Idempotent."""
    log.info("idempotency_purged", rows=idempotency_records_purge())


@reliable_task(name="workers.journal_sweep", queue=Queue.MAINTENANCE, soft_time_limit=50, time_limit=55)
def journal_sweep(*, idempotency_key: str) -> None:
    """Every 10 s: push back messages a dying worker took and lost (``workers.journal``). Idempotent."""
    result = journal_messages_sweep()
    log.info("journal_swept", **result.__dict__)
