"""Writes of the tenancy app: retailers, keys, origins."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from app.errors import ApiError
from app.tenancy.audit import audit_record
from app.tenancy.keys import key_generate, key_hash, key_prefix
from app.tenancy.models import AllowedOrigin, ApiKey, Retailer


@dataclass(frozen=True)
class IssuedKey:
    """A freshly made key: the raw value exists only here, once."""

    key: ApiKey
    raw: str


# scheme://host[:port] as a browser sends it in Origin: a DNS name (or an IPv4 address; not
# an IPv6 literal, which no storefront is served from), a port of 0-65535. The one home of
# the rule: the contract states it (the origin endpoints' ``pattern``) and
# ``origin_normalize`` enforces it.
_PORT = r"(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
ORIGIN_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::{_PORT})?/?$"
_ORIGIN = re.compile(ORIGIN_PATTERN.removesuffix("$") + r"\Z")


def origin_normalize(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, or a ``validation_failed`` error."""
    try:
        parts = urlsplit(origin) if _ORIGIN.match(origin) else None
        hostname, port = (parts.hostname, parts.port) if parts else (None, None)
    except ValueError:  # urlsplit's own refusals
        parts = hostname = None
    if parts is None or not hostname:
        raise ApiError(
            "validation_failed",
            f"{origin!r} is not an origin; use scheme://host[:port].",
            details=[{"field": "origin", "code": "invalid", "message": "expected scheme://host[:port]"}],
        )
    shown_port = f":{port}" if port else ""
    return f"{parts.scheme}://{hostname.lower()}{shown_port}"


def _key_issue(*, retailer: Retailer, kind: str, actor: str) -> IssuedKey:
    raw = key_generate(kind)
    key = ApiKey.objects.create(
        retailer=retailer,
        kind=kind,
        prefix=key_prefix(raw),
        key_hash=key_hash(raw),
        publishable_value=raw if kind == ApiKey.Kind.PUBLISHABLE else "",
    )
    audit_record(
        actor=actor,
        retailer_id=retailer.id,
        entity="api_key",
        entity_id=key.prefix,
        action="create",
        after={"kind": kind, "prefix": key.prefix},
    )
    return IssuedKey(key=key, raw=raw)


@transaction.atomic
def retailer_create(
    *, name: str, origins: list[str], actor: str = "system", timezone_name: str = "UTC"
) -> tuple[Retailer, IssuedKey, IssuedKey]:
    """Create a retailer with one publishable and one secret key."""
    retailer = Retailer.objects.create(name=name, time_zone=timezone_name)
    audit_record(
        actor=actor,
        retailer_id=retailer.id,
        entity="retailer",
        entity_id=str(retailer.id),
        action="create",
        after={"name": name},
    )
    for origin in origins:
        origin_add(retailer=retailer, origin=origin, actor=actor)
    publishable = _key_issue(retailer=retailer, kind=ApiKey.Kind.PUBLISHABLE, actor=actor)
    secret = _key_issue(retailer=retailer, kind=ApiKey.Kind.SECRET, actor=actor)
    return retailer, publishable, secret


@transaction.atomic
def origin_add(*, retailer: Retailer, origin: str, actor: str) -> AllowedOrigin:
    normalized = origin_normalize(origin)
    allowed, created = AllowedOrigin.objects.get_or_create(retailer=retailer, origin=normalized)
    if created:
        audit_record(
            actor=actor,
            retailer_id=retailer.id,
            entity="origin",
            entity_id=normalized,
            action="create",
            after={"origin": normalized},
        )
    return allowed


@transaction.atomic
def origin_remove(*, retailer: Retailer, origin: str, actor: str) -> bool:
    normalized = origin_normalize(origin)
    deleted, _ = AllowedOrigin.objects.filter(retailer=retailer, origin=normalized).delete()
    if deleted:
        audit_record(
            actor=actor,
            retailer_id=retailer.id,
            entity="origin",
            entity_id=normalized,
            action="delete",
            before={"origin": normalized},
        )
    return bool(deleted)


@transaction.atomic
def key_rotate(*, retailer: Retailer, kind: str, actor: str) -> IssuedKey:
    """Issue a new key of ``kind``; the current ones stay valid for the grace period."""
    grace_end = timezone.now() + timedelta(seconds=settings.KEY_ROTATION_GRACE_SECONDS)
    current = ApiKey.objects.select_for_update().filter(
        retailer=retailer, kind=kind, revoked_at__isnull=True, expires_at__isnull=True
    )
    for old in current:
        old.expires_at = grace_end
        old.save(update_fields=["expires_at"])
        audit_record(
            actor=actor,
            retailer_id=retailer.id,
            entity="api_key",
            entity_id=old.prefix,
            action="rotate",
            before={"expires_at": None},
            after={"expires_at": grace_end.isoformat()},
        )
    return _key_issue(retailer=retailer, kind=kind, actor=actor)


@transaction.atomic
def key_revoke(*, key: ApiKey, actor: str) -> ApiKey:
    """Revoke at once; every web process stops accepting it within API_KEY_CACHE_TTL seconds."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            retailer_id=key.retailer_id,
            entity="api_key",
            entity_id=key.prefix,
            action="revoke",
            after={"revoked_at": key.revoked_at.isoformat()},
        )
    return key


@transaction.atomic
def retailer_pricing_pause_set(*, retailer_id: int, paused: bool, actor: str) -> bool:
    """Set the pause switch of dynamic pricing; True when it changed (audited)."""
    changed = Retailer.objects.filter(pk=retailer_id).exclude(pricing_paused=paused).update(pricing_paused=paused)
    if changed:
        audit_record(
            actor=actor,
            retailer_id=retailer_id,
            entity="retailer",
            entity_id=str(retailer_id),
            action="update",
            before={"pricing_paused": not paused},
            after={"pricing_paused": paused},
        )
    return bool(changed)
