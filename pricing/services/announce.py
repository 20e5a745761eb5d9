"""``prices.changed``: one event per cause (one :func:`snapshots_refresh` call: a product
write, a repricing shard, a demand or competitor-price refresh, a schedule boundary),
carrying the changed SKUs with their old and new shown prices, in pages of at most 500.

It replaced a ``price.changed`` row per SKU: seeding 5 demo retailers of 10,000
products wrote 50,255 of them, none read. 500 SKUs of ~100 bytes each keep a page
near 50 KB, a comfortable webhook body; the pages of one cause share ``cause_id``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from workers.outbox import outbox_announce

TOPIC = "prices.changed"
PAGE_SIZE = 500


@dataclass(frozen=True)
class PriceChange:
    sku: str
    old_price: str | None  # None: priced for the first time
    new_price: str
    currency: str
    version: int

    def as_json(self) -> dict[str, object]:
        return {
            "sku": self.sku,
            "old_price": self.old_price,
            "new_price": self.new_price,
            "currency": self.currency,
            "version": self.version,
        }


def prices_changed_announce(*, retailer_id: int, reason: str, changes: list[PriceChange], now: datetime) -> int:
    """Announce the changes of one cause through the outbox, in the caller's transaction;
    returns how many pages (events) were written (0 when nothing changed)."""
    if not changes:
        return 0
    cause_id = uuid.uuid4().hex
    pages = [changes[start : start + PAGE_SIZE] for start in range(0, len(changes), PAGE_SIZE)]
    for number, page in enumerate(pages, start=1):
        outbox_announce(
            topic=TOPIC,
            payload={
                "retailer_id": retailer_id,
                "cause_id": cause_id,
                "reason": reason[:200],
                "occurred_at": now.isoformat(),
                "page": number,
                "pages": len(pages),
                "skus": [change.as_json() for change in page],
            },
            key=f"{retailer_id}:{cause_id}:{number}",
            version=1,
        )
    return len(pages)
