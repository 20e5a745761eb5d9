"""Celery entry points of the analytics app (thin: each calls a service).

Design: ``../shared/docs/ARCHITECTURE.md`` section 6, ``docs/demand-signal.md``.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from django.conf import settings

from analytics.demand_caps import EXEMPT
from analytics.services import (
    demand_refresh_claim,
    demand_refresh_marked,
    demand_refresh_recent,
    events_ingest,
    events_purge,
)
from analytics.validation import batch_rows
from workers.reliable import reliable_task
from workers.routing import Queue

log = structlog.get_logger(__name__)

REFRESH_AFTER_WINDOW_SECONDS = 0.1  # the refresh runs after its window closed, on any clock


@reliable_task(name="analytics.events_ingest_batch", queue=Queue.INGEST, soft_time_limit=60, time_limit=90)
def events_ingest_batch(
    *, retailer_id: int, batch: str, received_at: str, idempotency_key: str, contributor: str = EXEMPT
) -> None:
    """Count one accepted batch (up to 500 events) exactly once; its SKUs' demand signals follow within a window.

    ``batch`` is the body the API validated, as text: one string keeps Celery's
    argument repr and the message encoding cheap on the web request (~3 ms less).
    Safe to run any number of times: raw events are unique per (retailer, event
    id) and counters grow only by newly inserted rows, in one statement that also
    marks the batch's SKUs for the demand refresh, which the first batch of each
    refresh window schedules (``demand_refresh_claim``). A run that dies after the
    statement is redelivered; it then counts nothing and marks the SKUs again.
    ``contributor`` is the client hash of a publishable-key batch, whose demand weight is
    bounded per client and session (:mod:`analytics.demand_caps`); empty for a secret-key batch.
    """
    received = datetime.fromisoformat(received_at)
    rows = batch_rows(batch, received_at=received)
    result = events_ingest(retailer_id=retailer_id, rows=rows, received_at=received, contributor=contributor)
    window = demand_refresh_claim(retailer_id=retailer_id) if result.skus else None
    if window:
        demand_refresh_marked_task.apply_async(
            kwargs={"retailer_id": retailer_id, "idempotency_key": f"demand-refresh:{retailer_id}:{window}"},
            countdown=settings.ANALYTICS_DEMAND_REFRESH_DELAY_SECONDS + REFRESH_AFTER_WINDOW_SECONDS,
        )
    log.info(
        "events_ingested",
        retailer_id=retailer_id,
        received=len(rows),
        inserted=result.inserted,
        skipped_too_old=result.skipped_too_old,
        refresh_scheduled=bool(window),
    )


@reliable_task(name="analytics.demand_refresh_marked", queue=Queue.INGEST, soft_time_limit=60, time_limit=90)
def demand_refresh_marked_task(*, retailer_id: int, idempotency_key: str) -> None:
    """At the end of a retailer's refresh window: recompute the SKUs its batches marked and
    push the signals that moved. Idempotent (signals are a function of committed counts).
    A lost message delays the refresh to the next window or the 5-minute sweep."""
    pushed = demand_refresh_marked(retailer_id=retailer_id)
    log.info("demand_signals_refreshed", retailer_id=retailer_id, signals_pushed=len(pushed))


@reliable_task(name="analytics.events_purge", queue=Queue.MAINTENANCE, soft_time_limit=600, time_limit=660)
def events_purge_expired(*, idempotency_key: str) -> None:
    """Delete raw events past the dedup window (+ grace) and counters past their retention. Idempotent."""
    removed = events_purge()
    log.info(
        "analytics_purged",
        raw_events=removed.raw_events,
        counters=removed.counters,
        demand_budgets=removed.demand_budgets,
    )


@reliable_task(name="analytics.demand_refresh_recent", queue=Queue.MAINTENANCE, soft_time_limit=240, time_limit=280)
def demand_refresh_recent_task(*, idempotency_key: str) -> None:
    """Every 5 minutes: recompute the signals of SKUs active in the last ~75 minutes. Idempotent."""
    refreshed = demand_refresh_recent()
    log.info("demand_refreshed", skus=refreshed)
