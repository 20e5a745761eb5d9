"""Event rows and batch bodies for the analytics tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from analytics.validation import TYPE_CODES


def event_row(
    *,
    type: str = "product_view",
    sku: str = "SKU-1",
    ts: datetime | None = None,
    variant: str = "",
    event_id: str | None = None,
    quantity: int | None = None,
    price: str | None = None,
) -> list[Any]:
    """One row as the API hands it to the ingest task."""
    moment = (ts or datetime.now(UTC)).astimezone(UTC)
    return [
        event_id or str(uuid.uuid4()),
        TYPE_CODES[type],
        "" if type == "page_view" else sku,
        variant,
        "session-1",
        moment.isoformat(),
        quantity,
        price,
    ]


def event_json(
    *, type: str = "product_view", sku: str | None = "SKU-1", ts: datetime | None = None, **extra: Any
) -> dict[str, Any]:
    """One event as a browser sends it."""
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "type": type,
        "ts": (ts or datetime.now(UTC)).isoformat(),
        "session": "session-1",
        **extra,
    }
    if type != "page_view" and sku is not None:
        body["sku"] = sku
    return body


def batch_body(events: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"events": events})


def ingest_as_it_happened(retailer_id: int, rows: list[list[Any]], contributor: str = "") -> None:
    """Ingest task rows as if each had been received when it occurred (the history a demand test
    needs: an event received long after it occurred adds nothing to the demand input)."""
    from analytics.services import events_ingest

    by_moment: dict[str, list[list[Any]]] = {}
    for row in rows:
        by_moment.setdefault(row[5], []).append(row)
    for moment, batch in sorted(by_moment.items()):
        events_ingest(
            retailer_id=retailer_id, rows=batch, received_at=datetime.fromisoformat(moment), contributor=contributor
        )
