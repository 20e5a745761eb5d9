"""The webhook payloads, documented as components of the OpenAPI description (the contract
is OpenAPI 3.0.3, which has no ``webhooks`` section): a drf-spectacular postprocessing hook,
named by dotted string in ``SPECTACULAR_SETTINGS`` so ``app/`` imports no domain app."""

from __future__ import annotations

from typing import Any

from notifications.events import EVENT_TYPES, PAYLOAD_VERSION

_STRING = {"type": "string"}
_MONEY = {"type": "string", "pattern": r"^\d+(\.\d+)?$", "example": "19.99"}

DATA_SCHEMAS: dict[str, dict[str, Any]] = {
    "PricesChangedWebhookData": {
        "type": "object",
        "description": "One cause's price changes; a cause of more than 500 SKUs comes in pages sharing cause_id.",
        "required": ["cause_id", "reason", "page", "pages", "skus"],
        "properties": {
            "cause_id": _STRING,
            "reason": _STRING,
            "page": {"type": "integer", "minimum": 1},
            "pages": {"type": "integer", "minimum": 1},
            "skus": {
                "type": "array",
                "maxItems": 500,
                "items": {
                    "type": "object",
                    "required": ["sku", "old_price", "new_price", "currency", "version"],
                    "properties": {
                        "sku": _STRING,
                        "old_price": {**_MONEY, "nullable": True, "description": "null: priced for the first time"},
                        "new_price": _MONEY,
                        "currency": _STRING,
                        "version": {"type": "integer", "description": "The snapshot's version: drop older ones."},
                    },
                },
            },
        },
    },
    "BackupWebhookData": {
        "type": "object",
        "description": "backup.completed and backup.failed (fields owned by the backups app).",
        "additionalProperties": True,
        "properties": {"backup_id": _STRING, "error": _STRING},
    },
    "EndpointDisabledWebhookData": {
        "type": "object",
        "required": ["endpoint_id", "url", "reason"],
        "properties": {"endpoint_id": {"type": "integer"}, "url": _STRING, "reason": _STRING},
    },
    "PingWebhookData": {
        "type": "object",
        "properties": {"endpoint_id": {"type": "integer"}, "message": _STRING},
    },
}

ENVELOPE = {
    "type": "object",
    "description": (
        "The body of every webhook POST, signed per Standard Webhooks: headers webhook-id (the id below, the "
        "same on every re-send), webhook-timestamp (Unix seconds of the send) and webhook-signature "
        "('v1,' + base64 HMAC-SHA256 of 'id.timestamp.body' with the endpoint's whsec_ secret; two, "
        "space-separated, during a secret rotation)."
    ),
    "required": ["id", "type", "timestamp", "api_version", "retailer_id", "data"],
    "properties": {
        "id": {"type": "string", "example": "msg_2a7kq3..."},
        "type": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "timestamp": {"type": "string", "format": "date-time"},
        "api_version": {"type": "integer", "enum": [PAYLOAD_VERSION]},
        "retailer_id": {"type": "integer"},
        "data": {"oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in DATA_SCHEMAS]},
    },
}


def webhook_schemas_add(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(DATA_SCHEMAS)
    schemas["WebhookEnvelope"] = ENVELOPE
    return result
