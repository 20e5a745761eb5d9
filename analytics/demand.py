"""The demand signal: the one definition (also in ``docs/demand-signal.md``).

**Units.** A ``Decimal`` with 4 places, dimensionless: ``1.0000`` is normal demand,
``2.0000`` twice the normal rate, ``0.5000`` half of it.

**Windows.** With ``H`` the end of the current minute at computation time:

* *activity* of a set of per-minute counters = the sum of their events' demand weights:
  product views x 1 + add-to-cart x 5 + purchases x 20 (page views carry no SKU and do
  not count), except that an event received more than ``ANALYTICS_DEMAND_MAX_AGE_SECONDS``
  after it occurred weighs 0 and one client or session adds at most
  ``ANALYTICS_DEMAND_CAP_PER_SOURCE`` per SKU and hour (:mod:`analytics.demand_caps`;
  secret-key events are exempt). The analytics counts themselves stay exact;
* *last hour* = activity in the 60 minutes ``[H - 1 h, H)``;
* *trailing mean* = activity in the 168 hours ``[H - 169 h, H - 1 h)`` divided by the
  number of those hours since the SKU's first counted minute in them (rounded
  up, 1 to 168), so a young SKU is compared with its own short history instead
  of empty days.

**Signal** = last hour / trailing mean, rounded half-up to 4 places, capped at
``MAX_SIGNAL``. **Cold start**: no activity in the trailing window → ``1.0000``.

**When.** Recomputed about a second after every ingested batch (one refresh per
retailer per ``ANALYTICS_DEMAND_REFRESH_DELAY_SECONDS`` window), for the SKUs its
batches touched, and handed to ``pricing.services.demand_signals_set`` (see
:func:`analytics.services.demand_refresh_marked`). The foundation API that sets a
signal by hand sets this same number.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.db.models import F, IntegerField, Min, Q, Sum
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce

from analytics.models import SkuMinuteCount

WEIGHT_PRODUCT_VIEW = 1
WEIGHT_ADD_TO_CART = 5
WEIGHT_PURCHASE = 20
RECENT = timedelta(hours=1)
TRAILING_HOURS = 168
COLD_START = Decimal("1.0000")
MAX_SIGNAL = Decimal("100.0000")
PLACES = Decimal("0.0001")


def demand_signal(*, last_hour: int, trailing_total: int, trailing_hours: int) -> Decimal:
    """The signal from the activity of the last hour and of the trailing window (see the module doc)."""
    if trailing_total <= 0:
        return COLD_START
    hours = min(max(trailing_hours, 1), TRAILING_HOURS)
    ratio = Decimal(last_hour) * Decimal(hours) / Decimal(trailing_total)
    return min(ratio.quantize(PLACES, rounding=ROUND_HALF_UP), MAX_SIGNAL)


def activity_expression() -> CombinedExpression:
    """Weighted activity of one counter row, as a database expression."""
    return (
        F("product_view") * WEIGHT_PRODUCT_VIEW
        + F("add_to_cart") * WEIGHT_ADD_TO_CART
        + F("purchase") * WEIGHT_PURCHASE
    )


WindowRow = tuple[str, int, int, datetime | None]  # sku, last hour, trailing, first minute in the trailing window

_WINDOW_SQL = """
SELECT sku,
       COALESCE(SUM(demand_activity) FILTER (WHERE minute >= %(recent)s), 0),
       COALESCE(SUM(demand_activity) FILTER (WHERE minute < %(recent)s), 0),
       MIN(minute) FILTER (WHERE minute < %(recent)s AND demand_activity > 0)
FROM analytics_skuminutecount
WHERE retailer_id = %(retailer)s AND sku = ANY(%(skus)s) AND minute >= %(start)s AND minute < %(end)s
GROUP BY sku
"""


def _window_rows_postgresql(
    retailer_id: int, skus: list[str], start: datetime, recent: datetime, end: datetime
) -> list[WindowRow]:
    """One statement, no ORM compilation (which cost more than the query itself: ~2 ms a batch)."""
    params: dict[str, Any] = {"retailer": retailer_id, "skus": skus, "start": start, "recent": recent, "end": end}
    with connection.cursor() as cursor:
        cursor.execute(_WINDOW_SQL, params)
        return [(sku, int(last), int(trailing), first) for sku, last, trailing, first in cursor.fetchall()]


def _window_rows_portable(
    retailer_id: int, skus: list[str], start: datetime, recent: datetime, end: datetime
) -> list[WindowRow]:
    """The same rows through the ORM, for the embedded SQLite database."""
    activity = F("demand_activity")
    rows = (
        SkuMinuteCount.objects.filter(retailer_id=retailer_id, sku__in=skus, minute__gte=start, minute__lt=end)
        .values("sku")
        .annotate(
            last_hour=Coalesce(Sum(activity, filter=Q(minute__gte=recent)), 0, output_field=IntegerField()),
            trailing=Coalesce(Sum(activity, filter=Q(minute__lt=recent)), 0, output_field=IntegerField()),
            first_seen=Min("minute", filter=Q(minute__lt=recent, demand_activity__gt=0)),
        )
        .order_by()
    )
    return [(row["sku"], row["last_hour"], row["trailing"], row["first_seen"]) for row in rows]


def demand_signals(*, retailer_id: int, skus: list[str], now: datetime) -> dict[str, Decimal]:
    """The demand signal of each of ``skus`` at ``now``, from the committed counters (one grouped query)."""
    window_end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    recent_start = window_end - RECENT
    trailing_start = recent_start - timedelta(hours=TRAILING_HOURS)
    window_rows = _window_rows_postgresql if connection.vendor == "postgresql" else _window_rows_portable
    signals = dict.fromkeys(skus, COLD_START)
    for sku, last_hour, trailing, first_seen in window_rows(
        retailer_id, skus, trailing_start, recent_start, window_end
    ):
        hours = 0 if first_seen is None else math.ceil((recent_start - first_seen) / timedelta(hours=1))
        signals[sku] = demand_signal(last_hour=last_hour, trailing_total=trailing, trailing_hours=hours)
    return signals
