"""Reads of the notifications app, always scoped to one retailer (another's id is a 404)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from app.errors import ApiError
from notifications.models import Delivery, DeliveryAttempt, EmailNotification, NotificationAddress, WebhookEndpoint


def endpoint_list(*, retailer_id: int) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(retailer_id=retailer_id).order_by("pk")


def endpoint_get(*, retailer_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(retailer_id=retailer_id, pk=endpoint_id).first()
    if endpoint is None:
        raise ApiError("not_found", f"No webhook endpoint {endpoint_id}.")
    return endpoint


def delivery_list(*, endpoint: WebhookEndpoint, state: str | None = None) -> QuerySet[Delivery]:
    rows = (
        Delivery.objects.filter(endpoint=endpoint)
        .select_related("event")
        .prefetch_related(Prefetch("attempt_rows", queryset=DeliveryAttempt.objects.order_by("number")))
    )
    return rows.filter(state=state) if state else rows


def delivery_get(*, retailer_id: int, delivery_id: int) -> Delivery:
    delivery = Delivery.objects.filter(endpoint__retailer_id=retailer_id, pk=delivery_id).first()
    if delivery is None:
        raise ApiError("not_found", f"No webhook delivery {delivery_id}.")
    return delivery


def address_list(*, retailer_id: int) -> QuerySet[NotificationAddress]:
    return NotificationAddress.objects.filter(retailer_id=retailer_id).order_by("pk")


def address_get(*, retailer_id: int, address_id: int) -> NotificationAddress:
    address = NotificationAddress.objects.filter(retailer_id=retailer_id, pk=address_id).first()
    if address is None:
        raise ApiError("not_found", f"No notification address {address_id}.")
    return address


def notification_list(*, retailer_id: int) -> QuerySet[EmailNotification]:
    return EmailNotification.objects.filter(retailer_id=retailer_id).order_by("-created_at")
