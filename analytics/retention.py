"""How long raw events are kept, and the edges that follow from it.

Raw events are the dedup memory. Three edges keep "counted once" true at the
edge of the window:

* the API refuses events older than ``ANALYTICS_RAW_RETENTION_DAYS`` (``event_too_old``);
* the purge deletes raw events only once they are a grace period older than that;
* the worker skips events older than the purge horizon, so an event whose first
  copy may already have been purged is never counted a second time.

The grace period (one day) is longer than any backlog the ingest queue is
allowed to build, so an event accepted by the API is always counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

PURGE_GRACE = timedelta(days=1)


def window_start(now: datetime) -> datetime:
    """The oldest event time the API accepts."""
    return now - timedelta(days=settings.ANALYTICS_RAW_RETENTION_DAYS)


def purge_horizon(now: datetime) -> datetime:
    """Raw events that occurred before this are deleted, and are no longer counted if they arrive."""
    return window_start(now) - PURGE_GRACE


def counter_horizon(now: datetime) -> datetime:
    """Per-minute counters older than this are deleted."""
    return now - timedelta(days=settings.ANALYTICS_COUNTER_RETENTION_DAYS)
