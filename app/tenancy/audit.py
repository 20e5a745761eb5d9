"""The audit log: every change to a product, rule, key or origin leaves a row."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from app.request_context import current_request_id
from app.tenancy.models import AuditEntry


def actor_for_request(request: HttpRequest) -> str:
    """``key:<prefix>`` for API calls, ``staff:<username>`` for the admin."""
    auth = getattr(request, "auth", None)
    prefix = getattr(auth, "key_prefix", None)
    if prefix:
        return f"key:{prefix}"
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"staff:{user.get_username()}"
    return "system"


def audit_record(
    *,
    actor: str,
    retailer_id: int | None,
    entity: str,
    entity_id: str,
    action: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one audit row; call it inside the transaction of the change it records."""
    (entry,) = audit_record_many(
        actor=actor, retailer_id=retailer_id, entity=entity, changes=[(entity_id, action, before, after)]
    )
    return entry


def audit_record_many(
    *, actor: str, retailer_id: int | None, entity: str, changes: list[tuple[str, str, Any, Any]]
) -> list[AuditEntry]:
    """Write one audit row per ``(entity_id, action, before, after)`` in one INSERT (bulk writes)."""
    request_id = current_request_id() or ""
    return AuditEntry.objects.bulk_create(
        [
            AuditEntry(
                actor=actor,
                retailer_id=retailer_id,
                entity=entity,
                entity_id=entity_id,
                action=action,
                before=before,
                after=after,
                request_id=request_id,
            )
            for entity_id, action, before, after in changes
        ],
        batch_size=1000,
    )
