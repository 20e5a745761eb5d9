"""How much one event may add to the demand input: forged traffic moves prices only so far.

Every valid event is stored and counted exactly (the analytics counts); this module only
decides its **demand weight**, the part of it that reaches the demand signal
(:mod:`analytics.demand`), kept per event in ``RawEvent.demand_weight`` and summed per
minute in ``SkuMinuteCount.demand_activity``:

* the activity weight of its type (views 1, add to cart 5, purchases 20; page views carry
  no SKU and weigh 0);
* 0 when it occurred more than ``ANALYTICS_DEMAND_MAX_AGE_SECONDS`` before it was received
  (a backdated event must not rewrite the demand history the signal compares with);
* for publishable-key batches, at most ``ANALYTICS_DEMAND_CAP_PER_SOURCE`` activity units per
  SKU and clock hour from one **client** (the keyed client hash of
  :mod:`app.client_identity`) and from one **session**: the event gets what is left of the
  smaller of the two budgets. A flood of forged purchases from one client therefore moves a
  SKU's last-hour demand input by at most the cap, whatever sessions it invents.
  Secret-key batches (a retailer's own server) are exempt.

The budgets live in ``DemandUsage`` rows, locked for the batch's transaction, so concurrent
batches of one client share one budget.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from analytics.demand import WEIGHT_ADD_TO_CART, WEIGHT_PRODUCT_VIEW, WEIGHT_PURCHASE
from analytics.models import EventType

TYPE_WEIGHTS = {
    int(EventType.PAGE_VIEW): 0,
    int(EventType.PRODUCT_VIEW): WEIGHT_PRODUCT_VIEW,
    int(EventType.ADD_TO_CART): WEIGHT_ADD_TO_CART,
    int(EventType.PURCHASE): WEIGHT_PURCHASE,
}
EXEMPT = ""  # the contributor of a secret-key batch: no per-source budget

UsageKey = tuple[str, datetime, str]  # sku, hour, source


@dataclass(frozen=True)
class WeighedEvent:
    event_id: str
    sku: str
    hour: datetime
    sources: tuple[str, ...]  # the budgets it draws on; empty when exempt
    base_weight: int


def demand_horizon(received_at: datetime) -> datetime:
    """Events that occurred before this moment add nothing to the demand input."""
    return received_at - timedelta(seconds=settings.ANALYTICS_DEMAND_MAX_AGE_SECONDS)


def session_source(session: str) -> str:
    """A fixed-size name for a session's budget (sessions are client strings of up to 128 characters)."""
    return "s:" + hashlib.blake2b(session.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def events_weigh(rows: Iterable[list], *, contributor: str, received_at: datetime) -> list[WeighedEvent]:
    """The base weight and budgets of each task row (``[id, type, sku, variant, session, occurred_at, …]``)."""
    horizon = demand_horizon(received_at)
    weighed = []
    for row in rows:
        occurred = datetime.fromisoformat(row[5])
        base = TYPE_WEIGHTS[row[1]] if row[2] and occurred >= horizon else 0
        sources = () if contributor == EXEMPT else ("c:" + contributor, session_source(row[4]))
        hour = occurred.replace(minute=0, second=0, microsecond=0)
        weighed.append(WeighedEvent(row[0], row[2], hour, sources, base))
    return weighed


def usage_keys(events: Iterable[WeighedEvent]) -> list[UsageKey]:
    """The budgets a batch draws on, sorted (rows are locked in this order: no deadlocks)."""
    return sorted({(e.sku, e.hour, source) for e in events if e.base_weight for source in e.sources})


def weights_assign(events: list[WeighedEvent], used: Mapping[UsageKey, int]) -> dict[str, int]:
    """Each event's demand weight, given what its budgets had used before this batch.

    Events are taken in the batch's order; each gets the lesser of its base weight and what
    is left of every budget it draws on.
    """
    cap = settings.ANALYTICS_DEMAND_CAP_PER_SOURCE
    spent = dict(used)
    weights: dict[str, int] = {}
    for event in events:
        weight = event.base_weight
        keys = [(event.sku, event.hour, source) for source in event.sources]
        for key in keys:
            weight = min(weight, max(0, cap - spent.get(key, 0)))
        for key in keys:
            spent[key] = spent.get(key, 0) + weight
        weights[event.event_id] = weight
    return weights
