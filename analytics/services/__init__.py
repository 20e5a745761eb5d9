"""Writes of the analytics app: ingestion (``ingest``) and demand signal pushes (``demand``)."""

from analytics.services.demand import (
    demand_refresh,
    demand_refresh_claim,
    demand_refresh_marked,
    demand_refresh_recent,
)
from analytics.services.ingest import (
    IngestResult,
    PurgeResult,
    ReaggregateRangeError,
    counters_reaggregate,
    events_ingest,
    events_purge,
)

__all__ = [
    "IngestResult",
    "PurgeResult",
    "ReaggregateRangeError",
    "counters_reaggregate",
    "demand_refresh",
    "demand_refresh_claim",
    "demand_refresh_marked",
    "demand_refresh_recent",
    "events_ingest",
    "events_purge",
]
