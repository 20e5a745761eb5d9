"""Hand-written OpenAPI description of ``POST /v1/events``, served by the plain view in ``analytics.apis``.

drf-spectacular lists a route whose callback carries ``cls``; the documenting
view below describes the operation and delegates to the plain view.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from analytics.apis import events_ingest_view
from analytics.validation import MAX_EVENTS, PRICE_PATTERN


class EventSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(help_text="Client-generated; an id is counted once per retailer.")
    type = serializers.ChoiceField(choices=["page_view", "product_view", "add_to_cart", "purchase"])
    sku = serializers.RegexField(
        r"^[A-Za-z0-9._-]{1,64}$", required=False, allow_null=True, help_text="Required except for page_view."
    )
    ts = serializers.DateTimeField(help_text="ISO 8601 with a zone; older than the retention window: event_too_old.")
    session = serializers.CharField(max_length=128)
    variant = serializers.RegexField(
        r"^[A-Za-z0-9._-]{0,32}$",
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Experiment variant the shopper saw.",
    )
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, required=False, allow_null=True)
    price = serializers.RegexField(
        PRICE_PATTERN, required=False, allow_null=True, help_text="A decimal string: up to 8 digits, 4 after the point."
    )


class EventBatchSerializer(serializers.Serializer[Any]):
    events = serializers.ListField(
        child=EventSerializer(),
        min_length=1,
        max_length=MAX_EVENTS,
        help_text=f"1 to {MAX_EVENTS} events, at most 256 KB in all.",
    )


class AcceptedSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField(help_text="Events handed to the ingest queue (0 for known bots).")


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(description=description)


class EventsIngestApi(APIView):
    publishable_allowed = True

    @extend_schema(
        operation_id="events_ingest",
        parameters=[OpenApiParameter("key", str, description="Publishable key pk_… (browsers).")],
        request={"application/json": EventBatchSerializer, "text/plain": EventBatchSerializer},
        responses={
            202: AcceptedSerializer,
            400: _error("Invalid JSON or events; details name each bad event by index. event_too_old."),
            403: _error("origin_not_allowed (no CORS headers are sent)."),
            413: _error("The body is over 256 KB."),
            415: _error("Send application/json or text/plain (what navigator.sendBeacon sends)."),
            503: _error("broker_unavailable: nothing was stored; send again after Retry-After seconds."),
        },
        examples=[
            OpenApiExample(
                "A beacon batch",
                request_only=True,
                value={
                    "events": [
                        {
                            "id": "5b0e1f3e-8f2a-4c1d-9a57-2d1f0c7e9b11",
                            "type": "product_view",
                            "sku": "SKU-1",
                            "ts": "2025-01-31T12:00:00.000Z",
                            "session": "3f1c…",
                            "variant": "B",
                        }
                    ]
                },
            )
        ],
        summary="Send a batch of shopper events; 202 once the queue holds it, counted exactly once",
    )
    def post(self, request: Request) -> HttpResponse:
        return events_ingest_view(request._request)
