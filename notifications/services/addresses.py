"""Notification addresses: added through the API, mailed a confirmation link (valid
``NOTIFICATION_CONFIRM_DAYS``, 7), and notified only once the link was followed, so a
secret key alone cannot make us mail a stranger more than that one confirmation."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from app.errors import ApiError
from app.tenancy.models import Retailer
from notifications.models import NotificationAddress
from notifications.services.email import notification_enqueue


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def address_add(*, retailer: Retailer, email: str, confirm_base_url: str) -> NotificationAddress:
    """Store the address unconfirmed and queue its confirmation email. 409 ``address_exists``."""
    token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            address = NotificationAddress.objects.create(
                retailer=retailer,
                email=email.lower(),
                token_hash=_token_hash(token),
                token_expires_at=timezone.now() + timedelta(days=settings.NOTIFICATION_CONFIRM_DAYS),
            )
    except IntegrityError as error:
        raise ApiError("address_exists", f"{email} is already one of your notification addresses.") from error
    notification_enqueue(
        retailer_id=retailer.pk,
        to_email=address.email,
        kind="address.confirm",
        context={"confirm_url": f"{confirm_base_url}?token={token}"},
        dedup_key=f"address-confirm:{address.pk}",
    )
    return address


@transaction.atomic
def address_confirm(*, token: str) -> NotificationAddress:
    """Confirm the address the token names; ``invalid_confirmation`` if unknown or expired."""
    address = NotificationAddress.objects.select_for_update().filter(token_hash=_token_hash(token)).first()
    if address is None or (address.confirmed_at is None and address.token_expires_at < timezone.now()):
        raise ApiError("invalid_confirmation")
    if address.confirmed_at is None:
        address.confirmed_at = timezone.now()
        address.save(update_fields=["confirmed_at"])
    return address


def address_remove(*, address: NotificationAddress) -> None:
    address.delete()
