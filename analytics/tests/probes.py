"""What the analytics tests observe: counted events, raw rows, the state of the ingest queue."""

from __future__ import annotations

import orjson
import redis
from django.db.models import Sum

from analytics.models import SkuMinuteCount
from workers.testing import ManagedProcess, wait_until

CHROME_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def counted_total(retailer_id: int) -> int:
    """Every event counted for the retailer, all types, all minutes."""
    sums = SkuMinuteCount.objects.filter(retailer_id=retailer_id).aggregate(
        a=Sum("page_view"), b=Sum("product_view"), c=Sum("add_to_cart"), d=Sum("purchase")
    )
    return sum(value or 0 for value in sums.values())


def counted_by_sku(retailer_id: int, column: str = "product_view") -> dict[str, int]:
    rows = SkuMinuteCount.objects.filter(retailer_id=retailer_id).values("sku").annotate(n=Sum(column))
    return {row["sku"]: row["n"] for row in rows if row["n"]}


def ingest_drained(broker: redis.Redis) -> bool:
    """No batch waiting in the ingest queue and none delivered but unacknowledged."""
    return broker.llen("ingest") == 0 and broker.hlen("unacked") == 0


def held_messages(broker: redis.Redis) -> dict[str, object]:
    """What keeps the ingest queue from draining: its length, and the task and ETA of each
    unacknowledged message (kombu's envelope: the Celery headers)."""
    held = []
    for raw in broker.hvals("unacked"):
        envelope = orjson.loads(raw)[0]
        headers = envelope.get("headers", {})
        held.append((headers.get("task"), headers.get("eta"), envelope.get("properties", {}).get("delivery_info")))
    return {"ingest": broker.llen("ingest"), "unacked": held}


def wait_ingested(worker: ManagedProcess, batches: int, timeout: float = 60.0) -> None:
    """Wait until ``worker`` logged ``batches`` finished ingest tasks (duplicates included)."""
    wait_until(
        lambda: len(worker.events("events_ingested")) >= batches,
        timeout=timeout,
        message=f"{batches} batches not ingested",
    )


def wait_refreshed(worker: ManagedProcess, refreshes: int, timeout: float = 60.0) -> None:
    """Wait until ``worker`` logged ``refreshes`` finished demand refreshes (one per refresh window)."""
    wait_until(
        lambda: len(worker.events("demand_signals_refreshed")) >= refreshes,
        timeout=timeout,
        message=f"{refreshes} demand refreshes not run",
    )
