"""Celery entry points of the analytics app (thin: each calls a service).

Design: ``../shared/docs/ARCHITECTURE.md`` section 6, ``docs/demand-signal.md``.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from analytics.services import demand_refresh_marked, demand_refresh_recent, events_ingest, events_purge
from analytics.validation import batch_rows
from workers.reliable import reliable_task
from workers.routing import Queue

log = structlog.get_logger(__name__)


@reliable_task(name="analytics.events_ingest_batch", queue=Queue.INGEST, soft_time_limit=60, time_limit=90)
def events_ingest_batch(*, retailer_id: int, batch: str, received_at: str, idempotency_key: str) -> None:
    """Count one accepted batch (up to 500 events) exactly once, then refresh its SKUs' demand signals.

    ``batch`` is the body the API validated, as text: one string keeps Celery's
    argument repr and the message encoding cheap on the web request (~3 ms less).
    Safe to run any number of times: raw events are unique per (retailer, event
    id) and counters grow only by newly inserted rows, in one statement that also
    marks the batch's SKUs for the (coalesced) demand refresh. A run that dies
    after it is redelivered; it then counts nothing and marks the SKUs again.
    """
    received = datetime.fromisoformat(received_at)
    rows = batch_rows(batch, received_at=received)
    result = events_ingest(retailer_id=retailer_id, rows=rows, received_at=received)
    pushed = demand_refresh_marked(retailer_id=retailer_id)
    log.info(
        "events_ingested",
        retailer_id=retailer_id,
        received=len(rows),
        inserted=result.inserted,
        skipped_too_old=result.skipped_too_old,
        signals_pushed=len(pushed),
    )


@reliable_task(name="analytics.events_purge", queue=Queue.MAINTENANCE, soft_time_limit=600, time_limit=660)
def events_purge_expired(*, idempotency_key: str) -> None:
    """Delete raw events past the dedup window (+ grace) and counters past their retention. Idempotent."""
    removed = events_purge()
    log.info("analytics_purged", raw_events=removed.raw_events, counters=removed.counters)


@reliable_task(name="analytics.demand_refresh_recent", queue=Queue.MAINTENANCE, soft_time_limit=240, time_limit=280)
def demand_refresh_recent_task(*, idempotency_key: str) -> None:
    """Every 5 minutes: recompute the signals of SKUs active in the last ~75 minutes. Idempotent."""
    refreshed = demand_refresh_recent()
    log.info("demand_refreshed", skus=refreshed)
