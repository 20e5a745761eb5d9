"""``manage.py reaggregate_events --since … --until …``: rebuild counters from the stored raw events.

For replay after a bug fix: the counters of every minute in the range are
recomputed from the raw events (which are kept for ANALYTICS_RAW_RETENTION_DAYS),
giving exactly the counts a clean run gives. Ingestion waits while it runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.services import ReaggregateRangeError, counters_reaggregate, demand_refresh_recent


def _moment(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as error:
        raise CommandError(f"{raw!r} is not an ISO 8601 time (e.g. 2025-01-31T12:00:00Z)") from error
    if moment.tzinfo is None:
        raise CommandError(f"{raw!r} needs a time zone (Z or ±hh:mm)")
    return moment


class Command(BaseCommand):
    help = "Recompute the per-minute event counters of a time range from the stored raw events."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, type=_moment, help="ISO 8601 start (inclusive)")
        parser.add_argument("--until", required=True, type=_moment, help="ISO 8601 end (exclusive)")
        parser.add_argument("--retailer", type=int, default=None, help="Only this retailer id (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["since"] >= options["until"]:
            raise CommandError("--since must be before --until")
        try:
            written = counters_reaggregate(
                start=options["since"], end=options["until"], retailer_id=options["retailer"]
            )
        except ReaggregateRangeError as error:
            raise CommandError(f"cannot re-aggregate: {error}") from error
        refreshed = demand_refresh_recent(retailer_id=options["retailer"])
        self.stdout.write(f"{written} counter rows rebuilt; demand signals refreshed for {refreshed} SKUs")
