"""Writes of the analytics app: store and count a batch, re-aggregate, purge.

Design note: ``analytics/retention.py`` (the dedup window).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from analytics.demand_caps import EXEMPT, UsageKey, WeighedEvent, events_weigh, usage_keys, weights_assign
from analytics.models import DemandMark, DemandUsage, EventType, RawEvent, SkuMinuteCount
from analytics.retention import counter_horizon, purge_horizon

BUDGET_RETENTION = timedelta(hours=2)  # a budget is per clock hour: the last one closed an hour ago
PURGE_SLICE = 10_000  # rows per DELETE: ~50 ms on PostgreSQL, short enough not to stall ingestion
COUNT_COLUMNS = {int(value): label for value, label in EventType.choices}

_INGEST_SQL = """
WITH incoming AS (
    SELECT (r->>0)::uuid AS event_id, (r->>1)::smallint AS type, r->>2 AS sku, r->>3 AS variant,
           r->>4 AS session, (r->>5)::timestamptz AS occurred_at, (r->>6)::integer AS quantity,
           (r->>7)::numeric AS price, (r->>8)::smallint AS demand_weight, r->>9 AS session_source
    FROM jsonb_array_elements(%(rows)s::jsonb) AS r
),
inserted AS (
    INSERT INTO analytics_rawevent
        (retailer_id, event_id, type, sku, variant, session, occurred_at, received_at, quantity, price, demand_weight)
    SELECT %(retailer)s, event_id, type, sku, variant, session, occurred_at, %(received)s, quantity, price,
           demand_weight
    FROM incoming ORDER BY event_id
    ON CONFLICT (retailer_id, event_id) DO NOTHING
    RETURNING event_id, type, sku, variant, occurred_at, demand_weight
),
counted AS (
    INSERT INTO analytics_skuminutecount
        (retailer_id, sku, minute, variant, page_view, product_view, add_to_cart, purchase, demand_activity)
    SELECT %(retailer)s, sku, date_trunc('minute', occurred_at), variant,
           count(*) FILTER (WHERE type = 0), count(*) FILTER (WHERE type = 1),
           count(*) FILTER (WHERE type = 2), count(*) FILTER (WHERE type = 3), sum(demand_weight)
    FROM inserted GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ON CONFLICT (retailer_id, sku, minute, variant) DO UPDATE SET
        page_view = analytics_skuminutecount.page_view + EXCLUDED.page_view,
        product_view = analytics_skuminutecount.product_view + EXCLUDED.product_view,
        add_to_cart = analytics_skuminutecount.add_to_cart + EXCLUDED.add_to_cart,
        purchase = analytics_skuminutecount.purchase + EXCLUDED.purchase,
        demand_activity = analytics_skuminutecount.demand_activity + EXCLUDED.demand_activity
    RETURNING 1
),
spent AS (
    INSERT INTO analytics_demandusage AS u (retailer_id, sku, hour, source, used)
    SELECT %(retailer)s, i.sku, date_trunc('hour', i.occurred_at), s.source, sum(i.demand_weight)
    FROM inserted AS i JOIN incoming AS n USING (event_id)
    CROSS JOIN LATERAL unnest(ARRAY[%(client_source)s::text, n.session_source]) AS s(source)
    WHERE i.demand_weight > 0 AND %(client_source)s::text IS NOT NULL
    GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ON CONFLICT (retailer_id, sku, hour, source) DO UPDATE SET used = u.used + EXCLUDED.used
    RETURNING used
),
marked AS (
    INSERT INTO analytics_demandmark (retailer_id, sku)
    SELECT DISTINCT %(retailer)s, sku FROM incoming WHERE sku <> ''
    RETURNING 1
)
SELECT (SELECT coalesce(max(used), 0) FROM spent), (SELECT count(*) FROM inserted)
"""
# The primary query reads ``spent`` (and not ``counted``), so the budget rows are locked before
# the counter rows, in the order the budget lock below takes them: batches on either path lock
# in one order and cannot deadlock each other.
# Creates the batch's budget rows that are new and locks them all, returning their use so
# far, in one statement driven by the unique index: a lookup per key. (A SELECT … FOR UPDATE
# matching the keys by IN (…) was planned as a scan of all of the retailer's budget rows, and
# the batch's cost grew with the hour's traffic: bench/ingest_bench.py.)
_USAGE_LOCK_SQL = """
INSERT INTO analytics_demandusage AS u (retailer_id, sku, hour, source, used)
SELECT %(retailer)s, k->>0, (k->>1)::timestamptz, k->>2, 0 FROM jsonb_array_elements(%(keys)s::jsonb) AS k
ORDER BY 2, 3, 4
ON CONFLICT (retailer_id, sku, hour, source) DO UPDATE SET used = u.used
RETURNING sku, hour, source, used
"""


@dataclass(frozen=True)
class IngestResult:
    inserted: int
    skipped_too_old: int
    skus: frozenset[str]


def _usage_locked_postgresql(retailer_id: int, keys: list[UsageKey]) -> dict[UsageKey, int]:
    """The budgets' use so far, their rows created if new and locked until the batch commits."""
    params: dict[str, Any] = {
        "retailer": retailer_id,
        "keys": orjson.dumps([[sku, hour.isoformat(), source] for sku, hour, source in keys]).decode(),
    }
    with connection.cursor() as cursor:
        cursor.execute(_USAGE_LOCK_SQL, params)
        return {(sku, hour, source): used for sku, hour, source, used in cursor.fetchall()}


def _usage_locked_serialized(retailer_id: int, keys: list[UsageKey]) -> dict[UsageKey, int]:
    used = {}
    for sku, hour, source in keys:
        row, _ = DemandUsage.objects.get_or_create(retailer_id=retailer_id, sku=sku, hour=hour, source=source)
        used[(sku, hour, source)] = row.used
    return used


def _weights_locked(retailer_id: int, weighed: list[WeighedEvent]) -> dict[str, int]:
    """Each event's demand weight against what its budgets have left, their rows locked first."""
    keys = usage_keys(weighed)
    locked = _usage_locked_postgresql if connection.vendor == "postgresql" else _usage_locked_serialized
    return weights_assign(weighed, locked(retailer_id, keys) if keys else {})


def _weighted_rows(rows: list[list[Any]], weighed: list[WeighedEvent], weights: Mapping[str, int]) -> list[list[Any]]:
    """The task rows with each event's demand weight and its session's budget name appended."""
    return [
        [*row, weights[row[0]], event.sources[1] if event.sources else None]
        for row, event in zip(rows, weighed, strict=True)
    ]


class _BudgetExceededError(Exception):
    """The optimistic attempt charged a budget past its cap (it rolls back)."""


def _ingest_optimistic(
    *, retailer_id: int, rows: list[list[Any]], weighed: list[WeighedEvent], contributor: str, received_at: datetime
) -> int:
    """Ingest with every event at its full weight, in one statement, without locking the budgets
    first: the common case, where no budget binds. Raises :class:`_BudgetExceededError` (rolled back)
    when a budget went past its cap, then the batch is weighed against its locked budgets.

    The same weights as :func:`weights_assign` whenever it succeeds: if no budget ends past
    its cap, no event along the way met one. Concurrent batches check the sum they committed
    together, as each upsert adds to the row the one before it committed. Saves the budget
    lock's round trip and its rewrite of every budget row of the batch (a quarter of the
    batch's database time, bench/ingest_bench.py).
    """
    full = {event.event_id: event.base_weight for event in weighed}
    with transaction.atomic():
        most_used, inserted = _ingest_postgresql(
            retailer_id=retailer_id, rows=_weighted_rows(rows, weighed, full), contributor=contributor,
            received_at=received_at,
        )  # fmt: skip
        if most_used > settings.ANALYTICS_DEMAND_CAP_PER_SOURCE:
            raise _BudgetExceededError
    return inserted


def _ingest_postgresql(
    *, retailer_id: int, rows: list[list[Any]], contributor: str, received_at: datetime
) -> tuple[int, int]:
    """One statement: insert new raw events, count exactly the rows it inserted (and their demand
    weights), charge the budgets they drew on, mark the SKUs for a refresh. Returns the most a
    budget it charged has used, and the number of events it inserted.

    The rows travel as one JSON array: psycopg adapts eight Python lists into arrays
    element by element (~1.3 ms of worker CPU for 50 events), orjson writes the
    same in microseconds and PostgreSQL reads it faster too (bench/ingest_bench.py).
    """
    params: dict[str, Any] = {
        "rows": orjson.dumps(rows).decode(),
        "retailer": retailer_id,
        "received": received_at,
        "client_source": None if contributor == EXEMPT else "c:" + contributor,
    }
    with connection.cursor() as cursor:
        cursor.execute(_INGEST_SQL, params)
        most_used, inserted = cursor.fetchone()
        return int(most_used), int(inserted)


def _ingest_serialized(*, retailer_id: int, rows: list[list[Any]], contributor: str, received_at: datetime) -> int:
    """The same effect for a database with one writer at a time (SQLite, embedded mode).

    Read-then-insert is race-free only because SQLite's IMMEDIATE transactions
    serialise writers; PostgreSQL always takes :func:`_ingest_postgresql`.
    """
    ids = {row[0] for row in rows}
    seen = {
        str(event_id)
        for event_id in RawEvent.objects.filter(retailer_id=retailer_id, event_id__in=ids).values_list(
            "event_id", flat=True
        )
    }
    fresh: dict[str, RawEvent] = {}
    spent: Counter[tuple[str, datetime, str]] = Counter()
    for event_id, kind, sku, variant, session, occurred, quantity, price, weight, session_source in rows:
        if event_id in seen or event_id in fresh:
            continue
        fresh[event_id] = RawEvent(
            retailer_id=retailer_id,
            event_id=event_id,
            type=kind,
            sku=sku,
            variant=variant,
            session=session,
            occurred_at=datetime.fromisoformat(occurred),
            received_at=received_at,
            quantity=quantity,
            price=None if price is None else Decimal(price),
            demand_weight=weight,
        )
        if weight and session_source is not None:
            hour = fresh[event_id].occurred_at.replace(minute=0, second=0, microsecond=0)
            for source in ("c:" + contributor, session_source):
                spent[(sku, hour, source)] += weight
    RawEvent.objects.bulk_create(fresh.values())
    DemandMark.objects.bulk_create(
        DemandMark(retailer_id=retailer_id, sku=sku) for sku in sorted({r[2] for r in rows} - {""})
    )
    for (sku, hour, source), weight in sorted(spent.items()):
        DemandUsage.objects.filter(retailer_id=retailer_id, sku=sku, hour=hour, source=source).update(
            used=F("used") + weight
        )
    buckets: Counter[tuple[str, datetime, str, str]] = Counter()
    for event in fresh.values():
        bucket = (event.sku, event.occurred_at.replace(second=0, microsecond=0), event.variant)
        buckets[(*bucket, COUNT_COLUMNS[event.type])] += 1
        buckets[(*bucket, "demand_activity")] += event.demand_weight
    for (sku, minute, variant, column), count in sorted(buckets.items()):
        counter, _ = SkuMinuteCount.objects.get_or_create(
            retailer_id=retailer_id, sku=sku, minute=minute, variant=variant
        )
        SkuMinuteCount.objects.filter(pk=counter.pk).update(**{column: F(column) + count})
    return len(fresh)


def events_ingest(
    *, retailer_id: int, rows: list[list[Any]], received_at: datetime, contributor: str = EXEMPT
) -> IngestResult:
    """Store a batch's raw events, add to the per-minute counters what was newly stored, and
    mark the batch's SKUs for :func:`analytics.services.demand_refresh_marked`.

    ``contributor`` is the keyed client hash of a publishable-key batch (its events' demand
    weights are bounded per client and session, :mod:`analytics.demand_caps`), or
    ``EXEMPT`` for a retailer's own server.

    Guarantees: idempotent per (retailer, event id) — a redelivered, re-sent or
    concurrently processed batch counts nothing twice, and charges no demand budget
    twice; raw rows, counters and budgets commit together or not at all. On PostgreSQL
    the counting is one statement: first with every event at its full weight, and only when
    that took a budget past its cap (rolled back), again after the batch's budget rows were
    locked and each event weighed against what they had left (:func:`_ingest_optimistic`);
    either way budget rows are locked before counter rows and in sorted order, so concurrent
    batches cannot deadlock. The counter rows of a busy minute,
    which every batch updates, are locked by that last statement only (holding them
    through the demand push made two ingest processes slower than one). Events older
    than the purge horizon are skipped (their first copy may be gone; see
    ``analytics/retention.py``).
    """
    horizon = purge_horizon(timezone.now())
    fresh_rows = sorted((row for row in rows if datetime.fromisoformat(row[5]) >= horizon), key=lambda row: row[0])
    skus = frozenset(row[2] for row in fresh_rows if row[2])
    if not fresh_rows:
        return IngestResult(inserted=0, skipped_too_old=len(rows), skus=skus)
    weighed = events_weigh(fresh_rows, contributor=contributor, received_at=received_at)
    skipped = len(rows) - len(fresh_rows)
    if connection.vendor == "postgresql":
        try:
            inserted = _ingest_optimistic(
                retailer_id=retailer_id, rows=fresh_rows, weighed=weighed, contributor=contributor,
                received_at=received_at,
            )  # fmt: skip
            return IngestResult(inserted=inserted, skipped_too_old=skipped, skus=skus)
        except _BudgetExceededError:
            pass  # a budget binds: weigh each event against what its budgets have left
    with transaction.atomic():
        weighted = _weighted_rows(fresh_rows, weighed, _weights_locked(retailer_id, weighed))
        if connection.vendor == "postgresql":
            inserted = _ingest_postgresql(
                retailer_id=retailer_id, rows=weighted, contributor=contributor, received_at=received_at
            )[1]
        else:
            inserted = _ingest_serialized(
                retailer_id=retailer_id, rows=weighted, contributor=contributor, received_at=received_at
            )
    return IngestResult(inserted=inserted, skipped_too_old=skipped, skus=skus)


class ReaggregateRangeError(ValueError):
    """The range reaches back past the purge horizon, where raw events are gone."""


def _minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@transaction.atomic
def counters_reaggregate(*, start: datetime, end: datetime, retailer_id: int | None = None) -> int:
    """Rebuild the counters of the minutes in ``[start, end)`` from the stored raw events.

    Gives exactly the counts a clean run gives (replay after a bug fix). On
    PostgreSQL the counter table is locked against ingestion for the duration,
    so a batch committing meanwhile is counted exactly once. Returns the number
    of counter rows written.
    """
    start = _minute_floor(start)
    end = _minute_floor(end) + (timedelta(minutes=1) if end != _minute_floor(end) else timedelta(0))
    if start < purge_horizon(timezone.now()):
        raise ReaggregateRangeError(f"raw events before {purge_horizon(timezone.now()).isoformat()} were purged")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE analytics_skuminutecount IN SHARE ROW EXCLUSIVE MODE")
    scope = Q(retailer_id=retailer_id) if retailer_id is not None else Q()
    SkuMinuteCount.objects.filter(scope, minute__gte=start, minute__lt=end).delete()
    counts = {label: Count("id", filter=Q(type=value)) for value, label in COUNT_COLUMNS.items()}
    buckets = (
        RawEvent.objects.filter(scope, occurred_at__gte=start, occurred_at__lt=end)
        .annotate(bucket=TruncMinute("occurred_at"))
        .values("retailer_id", "sku", "bucket", "variant")
        .annotate(**counts, demand_activity=Sum("demand_weight"))
        .order_by()
    )
    created = SkuMinuteCount.objects.bulk_create(
        (
            SkuMinuteCount(
                retailer_id=row["retailer_id"],
                sku=row["sku"],
                minute=row["bucket"],
                variant=row["variant"],
                **{label: row[label] for label in COUNT_COLUMNS.values()},
                demand_activity=row["demand_activity"],
            )
            for row in buckets.iterator()
        ),
        batch_size=1000,
    )
    return len(created)


@dataclass(frozen=True)
class PurgeResult:
    raw_events: int
    counters: int
    demand_budgets: int


def events_purge(*, now: datetime | None = None, slice_size: int = PURGE_SLICE) -> PurgeResult:
    """Delete raw events past the purge horizon and counters past their retention.

    Idempotent; works in slices of ``slice_size`` rows, each its own short transaction.
    """
    moment = now or timezone.now()
    return PurgeResult(
        raw_events=_delete_in_slices(RawEvent, Q(occurred_at__lt=purge_horizon(moment)), slice_size),
        counters=_delete_in_slices(SkuMinuteCount, Q(minute__lt=counter_horizon(moment)), slice_size),
        demand_budgets=_delete_in_slices(DemandUsage, Q(hour__lt=moment - BUDGET_RETENTION), slice_size),
    )


def _delete_in_slices(
    model: type[RawEvent] | type[SkuMinuteCount] | type[DemandUsage], where: Q, slice_size: int
) -> int:
    total = 0
    while True:
        with transaction.atomic():
            ids = list(model.objects.filter(where).values_list("pk", flat=True)[:slice_size])
            if not ids:
                return total
            total += model.objects.filter(pk__in=ids).delete()[0]
