"""Webhook endpoints: create, update, delete, rotate the secret. The raw secret is returned
once (create, rotate) and stored only encrypted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from app.errors import ApiError
from app.tenancy.models import Retailer
from notifications.events import EVENT_TYPES
from notifications.models import WebhookEndpoint
from notifications.secrets import secret_decrypt, secret_encrypt, secret_generate
from notifications.urls_check import endpoint_url_normalize, endpoint_url_reachable_check


@dataclass(frozen=True)
class IssuedSecret:
    endpoint: WebhookEndpoint
    secret: str


def event_types_validate(event_types: list[str]) -> list[str]:
    """The sorted, distinct event types, or ``ApiError('unknown_event_type')`` (none, or an unknown one)."""
    unknown = sorted(set(event_types) - set(EVENT_TYPES) - {"ping"})
    if not event_types or unknown:
        raise ApiError(
            "unknown_event_type",
            f"Unknown event types: {', '.join(unknown)}." if unknown else "Subscribe to at least one event type.",
            details=[{"field": "event_types", "known": sorted(EVENT_TYPES)}],
        )
    return sorted(set(event_types))


def endpoint_secrets(endpoint: WebhookEndpoint) -> list[str]:
    """The secrets to sign with now: the current one, plus the previous during its grace period."""
    secrets = [secret_decrypt(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires and expires > timezone.now():
        secrets.append(secret_decrypt(endpoint.previous_secret_encrypted))
    return secrets


@transaction.atomic
def endpoint_create(*, retailer: Retailer, url: str, event_types: list[str], description: str = "") -> IssuedSecret:
    """Create an endpoint with a new secret (shown once). 400 ``invalid_url`` /
    ``private_address`` / ``unknown_event_type``, 409 ``endpoint_exists``, 422 ``too_many_endpoints``."""
    normalized = endpoint_url_normalize(url)
    types = event_types_validate(event_types)
    endpoint_url_reachable_check(normalized)
    Retailer.objects.select_for_update().filter(pk=retailer.pk).first()  # serializes the count below
    if WebhookEndpoint.objects.filter(retailer=retailer).count() >= settings.WEBHOOK_ENDPOINTS_MAX:
        raise ApiError("too_many_endpoints", f"At most {settings.WEBHOOK_ENDPOINTS_MAX} endpoints per retailer.")
    secret = secret_generate()
    try:
        with transaction.atomic():
            endpoint = WebhookEndpoint.objects.create(
                retailer=retailer,
                url=normalized,
                event_types=types,
                description=description,
                secret_encrypted=secret_encrypt(secret),
            )
    except IntegrityError as error:
        raise ApiError("endpoint_exists", f"{normalized} is already one of your endpoints.") from error
    return IssuedSecret(endpoint=endpoint, secret=secret)


@transaction.atomic
def endpoint_update(*, endpoint: WebhookEndpoint, changes: dict[str, Any]) -> WebhookEndpoint:
    """Change url, event types, description or enabled. Re-enabling resets the health counters
    (the held deliveries wait for a replay, which the retailer asks for with a dry run first)."""
    if "url" in changes:
        endpoint.url = endpoint_url_normalize(changes["url"])
        endpoint_url_reachable_check(endpoint.url)
    if "event_types" in changes:
        endpoint.event_types = event_types_validate(changes["event_types"])
    if "description" in changes:
        endpoint.description = changes["description"]
    if "enabled" in changes and changes["enabled"] != endpoint.enabled:
        endpoint.enabled = changes["enabled"]
        endpoint.disabled_at = None if endpoint.enabled else timezone.now()
        endpoint.disabled_reason = "" if endpoint.enabled else "disabled by the retailer"
        if endpoint.enabled:
            endpoint.consecutive_failures, endpoint.circuit_open_until = 0, None
            endpoint.first_failure_at, endpoint.unhealthy_notified_at = None, None
    try:
        with transaction.atomic():
            endpoint.save()
    except IntegrityError as error:
        raise ApiError("endpoint_exists", f"{endpoint.url} is already one of your endpoints.") from error
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()


@transaction.atomic
def endpoint_secret_rotate(*, endpoint: WebhookEndpoint) -> IssuedSecret:
    """A new secret (shown once); the old one keeps signing for ``WEBHOOK_SECRET_GRACE_SECONDS``,
    so both signatures are sent meanwhile and the receiver can switch at leisure."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = secret_generate()
    locked.previous_secret_encrypted = locked.secret_encrypted
    locked.previous_secret_expires_at = timezone.now() + timedelta(seconds=settings.WEBHOOK_SECRET_GRACE_SECONDS)
    locked.secret_encrypted = secret_encrypt(secret)
    locked.save(update_fields=["previous_secret_encrypted", "previous_secret_expires_at", "secret_encrypted"])
    return IssuedSecret(endpoint=locked, secret=secret)
