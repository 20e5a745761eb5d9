"""Writes of the analytics app: recompute demand signals and hand the ones that moved to pricing.

Design note: ``docs/demand-signal.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from analytics.demand import PLACES as SIGNAL_PLACES
from analytics.demand import RECENT, demand_signals
from analytics.models import SkuMinuteCount
from pricing.models import DemandSignal
from pricing.services import demand_signals_set

DEMAND_LOCK_CLASS = 0x5F44  # pg_advisory_xact_lock(class, retailer_id): one demand push per retailer at a time
# Smallest move of a signal worth a reprice: 1% of normal demand (a demand rule with sensitivity 1
# moves the price by at most 1% for it). Measured with bench/ingest_bench.py: pushing every
# 4th-decimal wiggle made repricing more than half of the ingest worker's time.
PUSH_STEP = Decimal("0.0100")
# The periodic sweep (every 5 minutes) also covers SKUs whose last activity just left the hour.
RECENT_SLACK = timedelta(minutes=15)
REFRESH_CHUNK = 500  # SKUs per demand push: one pricing transaction of bounded size


def _moved(stored: Decimal | None, signal: Decimal) -> bool:
    return stored is None or abs(signal - stored) >= PUSH_STEP


def _stored_signals(*, retailer_id: int, skus: list[str]) -> dict[str, Decimal]:
    """The signals pricing holds now (a read of its table: plain SQL, half the cost of the ORM's ~3 ms)."""
    placeholders = ", ".join(["%s"] * len(skus))
    sql = f"SELECT sku, signal FROM {DemandSignal._meta.db_table} WHERE retailer_id = %s AND sku IN ({placeholders})"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [retailer_id, *skus])
        return {sku: Decimal(str(signal)).quantize(SIGNAL_PLACES) for sku, signal in cursor.fetchall()}


def _refresh(*, retailer_id: int, skus: list[str], now: datetime) -> dict[str, Decimal]:
    """Inside a transaction: take the retailer's push lock, compute, push what moved."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [DEMAND_LOCK_CLASS, retailer_id])
    signals = demand_signals(retailer_id=retailer_id, skus=skus, now=now)
    current = _stored_signals(retailer_id=retailer_id, skus=skus)
    moved = {sku: signal for sku, signal in signals.items() if _moved(current.get(sku), signal)}
    if moved:
        demand_signals_set(retailer_id=retailer_id, signals=moved, actor="analytics")
    return moved


def demand_refresh(*, retailer_id: int, skus: Iterable[str], now: datetime | None = None) -> dict[str, Decimal]:
    """Recompute the demand signals of ``skus`` and hand the ones that moved to the pricing engine.

    A signal is pushed when it is at least ``PUSH_STEP`` away from the value
    pricing holds (or pricing holds none), so the stored signal is always within
    0.0100 of the definition while one more view of a busy SKU does not reprice
    it. Pricing stores them and reprices the SKUs whose price moves. Idempotent:
    the signal is a function of the committed counters. Pushes are serialised per
    retailer (the lock is held to the end of the transaction), so the last push
    saw every count committed before it: never a stale overwrite by a slower
    batch. Returns the signals pushed.
    """
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    with transaction.atomic():
        return _refresh(retailer_id=retailer_id, skus=wanted, now=now or timezone.now())


def demand_refresh_recent(*, retailer_id: int | None = None, now: datetime | None = None) -> int:
    """Refresh the signals of every SKU with activity in the last hour and a bit (``RECENT_SLACK``).

    Signals are recomputed after each batch for its SKUs; this periodic sweep
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
