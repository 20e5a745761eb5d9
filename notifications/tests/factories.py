"""Helpers that build notification rows through the services, as the app does."""

from __future__ import annotations

import itertools
from typing import Any

from django.db import transaction

from conftest import Tenant
from notifications.models import Delivery, EmailNotification, WebhookEndpoint
from notifications.services.email import NewNotification, notifications_enqueue
from notifications.services.endpoints import endpoint_create
from notifications.services.fanout import event_fan_out

_versions = itertools.count(1)


def endpoint_make(tenant: Tenant, url: str, event_types: list[str] | None = None) -> tuple[WebhookEndpoint, str]:
    issued = endpoint_create(retailer=tenant.retailer, url=url, event_types=event_types or ["prices.changed"])
    return issued.endpoint, issued.secret


def event_announce(tenant: Tenant, topic: str = "prices.changed", **data: Any) -> list[Delivery]:
    """Fan an event out as the dispatcher does (in one transaction); returns its deliveries."""
    version = next(_versions)
    event = {"topic": topic, "key": f"test:{version}", "version": version, "retailer_id": tenant.retailer.pk, **data}
    event_fan_out(event=event)
    return list(
        Delivery.objects.filter(event__payload__isnull=False, event__retailer=tenant.retailer).order_by("-pk")[
            : WebhookEndpoint.objects.filter(retailer=tenant.retailer).count()
        ]
    )


def notifications_make(tenant: Tenant, run: str, count: int) -> list[EmailNotification]:
    """``count`` backup.completed notifications to distinct addresses, in one transaction."""
    with transaction.atomic():
        return notifications_enqueue(
            [
                NewNotification(tenant.retailer.pk, f"ops{number}@alice.example", "backup.completed", f"{run}:{number}")
                for number in range(count)
            ]
        )
