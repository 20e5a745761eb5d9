"""The body of a webhook: a versioned JSON envelope around the event's data, and its stable id."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

from notifications.events import PAYLOAD_VERSION
from notifications.models import WebhookEvent

ENVELOPE_FIELDS = ("topic", "key", "version", "retailer_id", "occurred_at")


def event_public_id(*, topic: str, key: str, version: int) -> str:
    """``msg_`` + 26 base32 characters of SHA-256 over the event's outbox identity: the same
    announced event always gets the same ``webhook-id``, redelivered or replayed."""
    digest = hashlib.sha256(f"{topic}\x00{key}\x00{version}".encode()).digest()[:16]
    return "msg_" + base64.b32encode(digest).decode().rstrip("=").lower()


def event_data(event: dict[str, Any]) -> dict[str, Any]:
    """The announced payload without the outbox's own fields."""
    return {name: value for name, value in event.items() if name not in ENVELOPE_FIELDS}


def envelope_body(event: WebhookEvent) -> bytes:
    """The bytes we sign and POST; the same for every attempt of a delivery."""
    return orjson.dumps(
        {
            "id": event.public_id,
            "type": event.event_type,
            "timestamp": event.occurred_at.isoformat(),
            "api_version": PAYLOAD_VERSION,
            "retailer_id": event.retailer_id,
            "data": event.payload,
        }
    )
