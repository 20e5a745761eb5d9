"""Writes of the analytics app: recompute demand signals and hand the ones that moved to pricing.

Design note: ``docs/demand-signal.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from analytics.demand import PLACES as SIGNAL_PLACES
from analytics.demand import RECENT, demand_signals
from analytics.models import DemandMark, SkuMinuteCount
from pricing.models import DemandSignal
from pricing.services import demand_signals_set
from workers.broker import broker_redis

DEMAND_LOCK_CLASS = 0x5F44  # pg_advisory_xact_lock(class, retailer_id): one demand push per retailer at a time
# Smallest move of a signal worth a reprice: 1% of normal demand (a demand rule with sensitivity 1
# moves the price by at most 1% for it). Measured with bench/ingest_bench.py: pushing every
# 4th-decimal wiggle made repricing more than half of the ingest worker's time.
PUSH_STEP = Decimal("0.0100")
# The periodic sweep (every 5 minutes) also covers SKUs whose last activity just left the hour.
RECENT_SLACK = timedelta(minutes=15)
REFRESH_CHUNK = 500  # SKUs per demand push: one pricing transaction of bounded size
REFRESH_WINDOW_PREFIX = "sf:demand-refresh-window"
# Rounds a refresh runs for marks other batches left meanwhile; under a steady stream the next
# batch takes over, and the 5-minute sweep covers SKUs whose marks outlive a burst's last round.
MAX_ROUNDS = 10
_TAKE_MARKS_SQL = """
DELETE FROM analytics_demandmark
WHERE retailer_id = %s AND pg_try_advisory_xact_lock(%s, %s)
RETURNING sku
"""


def _moved(stored: Decimal | None, signal: Decimal) -> bool:
    return stored is None or abs(signal - stored) >= PUSH_STEP


def _stored_signals(*, retailer_id: int, skus: list[str]) -> dict[str, Decimal]:
    """The signals pricing holds now (a read of its table: plain SQL, half the cost of the ORM's ~3 ms)."""
    placeholders = ", ".join(["%s"] * len(skus))
    sql = f"SELECT sku, signal FROM {DemandSignal._meta.db_table} WHERE retailer_id = %s AND sku IN ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [retailer_id, *skus])
        return {sku: Decimal(str(signal)).quantize(SIGNAL_PLACES) for sku, signal in cursor.fetchall()}


def _compute_and_push(*, retailer_id: int, skus: list[str], now: datetime) -> dict[str, Decimal]:
    """Inside a transaction holding the retailer's push lock: compute, push what moved."""
    signals = demand_signals(retailer_id=retailer_id, skus=skus, now=now)
    current = _stored_signals(retailer_id=retailer_id, skus=skus)
    moved = {sku: signal for sku, signal in signals.items() if _moved(current.get(sku), signal)}
    if moved:
        demand_signals_set(retailer_id=retailer_id, signals=moved, actor="analytics")
    return moved


def _take_marks(retailer_id: int) -> list[str]:
    """Inside a transaction: the retailer's marked SKUs, taken together with its push lock.

    Empty when nothing is marked, or when another refresh holds the lock (that
    one looks for marks again after its commit). The lock is tried per deleted
    row, so it is held from this statement to the end of the transaction; the
    statements after it see every count committed before it was taken.
    """
    if connection.vendor != "postgresql":
        marks = DemandMark.objects.filter(retailer_id=retailer_id)
        skus = sorted(set(marks.values_list("sku", flat=True)))
        marks.delete()
        return skus
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_MARKS_SQL, [retailer_id, DEMAND_LOCK_CLASS, retailer_id])
        return sorted({sku for (sku,) in cursor.fetchall()})


def demand_refresh_marked(*, retailer_id: int, now: datetime | None = None) -> dict[str, Decimal]:
    """At the end of a refresh window: recompute the retailer's marked SKUs and push the signals that moved.

    Coalesced twice: batches ask for at most one refresh per window
    (:func:`demand_refresh_claim`), and while one refresh of a retailer runs, the
    batches finishing meanwhile only leave their marks, which the running refresh
    takes in its next round (it looks again after each commit). So each SKU is
    recomputed within about a window after every batch that touched it, from
    counts committed after that batch, without recomputing once per batch.
    Pushes are serialised per retailer, so the last push saw every count
    committed before it. Returns the signals pushed.
    """
    pushed: dict[str, Decimal] = {}
    for _ in range(MAX_ROUNDS):
        with transaction.atomic():
            skus = _take_marks(retailer_id)
            if not skus:
                return pushed
            for start in range(0, len(skus), REFRESH_CHUNK):
                chunk = skus[start : start + REFRESH_CHUNK]
                pushed.update(_compute_and_push(retailer_id=retailer_id, skus=chunk, now=now or timezone.now()))
        if not DemandMark.objects.filter(retailer_id=retailer_id).exists():
            return pushed
    return pushed


def demand_refresh_claim(*, retailer_id: int) -> str | None:
    """Open the retailer's refresh window, if none is open: returns its id, or ``None``.

    The caller that opens a window schedules one :func:`demand_refresh_marked` for its
    end (``ANALYTICS_DEMAND_REFRESH_DELAY_SECONDS``); every batch committed before then
    left its marks, which that refresh takes. A batch that finds a window open only
    leaves marks. The window lives in the broker Redis (which does not evict); losing
    it costs one extra refresh, never a missed one.
    """
    window = uuid.uuid4().hex
    delay_ms = max(1, int(settings.ANALYTICS_DEMAND_REFRESH_DELAY_SECONDS * 1000))
    opened = broker_redis().set(f"{REFRESH_WINDOW_PREFIX}:{retailer_id}", window, nx=True, px=delay_ms)
    return window if opened else None


def demand_refresh(*, retailer_id: int, skus: Iterable[str], now: datetime | None = None) -> dict[str, Decimal]:
    """Recompute the demand signals of ``skus`` and hand the ones that moved to the pricing engine.

    A signal is pushed when it is at least ``PUSH_STEP`` away from the value
    pricing holds (or pricing holds none), so the stored signal is always within
    0.0100 of the definition while one more view of a busy SKU does not reprice
    it. Pricing stores them and reprices the SKUs whose price moves. Idempotent:
    the signal is a function of the committed counters. Waits for the retailer's
    push lock, then takes the marks left meanwhile (see :func:`demand_refresh_marked`).
    Returns the signals pushed.
    """
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [DEMAND_LOCK_CLASS, retailer_id])
        pushed = _compute_and_push(retailer_id=retailer_id, skus=wanted, now=now or timezone.now())
    return {**pushed, **demand_refresh_marked(retailer_id=retailer_id, now=now)}


def demand_refresh_recent(*, retailer_id: int | None = None, now: datetime | None = None) -> int:
    """Refresh the signals of every SKU with activity in the last hour and a bit (``RECENT_SLACK``).

    Signals are recomputed about a second after each batch for its SKUs; this periodic sweep
    makes a signal fall back when activity stops (the hour slides past it) and
    follows a re-aggregation. Returns the number of SKUs refreshed.
    """
    moment = now or timezone.now()
    scope = Q(retailer_id=retailer_id) if retailer_id is not None else Q()
    active = (
        SkuMinuteCount.objects.filter(scope, minute__gte=moment - RECENT - RECENT_SLACK)
        .exclude(sku="")
        .values_list("retailer_id", "sku")
        .distinct()
        .order_by("retailer_id", "sku")
    )
    by_retailer: dict[int, list[str]] = {}
    for owner, sku in active:
        by_retailer.setdefault(owner, []).append(sku)
    for owner, skus in by_retailer.items():
        for start in range(0, len(skus), REFRESH_CHUNK):
            demand_refresh(retailer_id=owner, skus=skus[start : start + REFRESH_CHUNK], now=moment)
    return sum(len(skus) for skus in by_retailer.values())
