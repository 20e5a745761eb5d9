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
from analytics.validation import MAX_EVENTS, PRICE, VARIANT
from pricing.skus import SKU


class EventSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(help_text="Client-generated; an id is counted once per retailer.")
    type = serializers.ChoiceField(choices=["page_view", "product_view", "add_to_cart", "purchase"])
    sku = serializers.RegexField(
        SKU.python_search, required=False, allow_null=True, help_text="Required except for page_view."
    )
    ts = serializers.DateTimeField(help_text="ISO 8601 with a zone; older than the retention window: event_too_old.")
    session = serializers.CharField(
        max_length=128,
        help_text="Any text but NUL and lone surrogates (invalid_characters: PostgreSQL cannot store them).",
    )
    variant = serializers.RegexField(
        VARIANT.python_search,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="Experiment variant the shopper saw.",
    )
    quantity = serializers.IntegerField(min_value=1, max_value=100_000, required=False, allow_null=True)
    price = serializers.RegexField(
        PRICE.python_search,
        required=False,
        allow_null=True,
        help_text="A decimal string: up to 8 digits, 4 after the point.",
    )


class EventBatchSerializer(serializers.Serializer[Any]):
    events = serializers.ListField(
        child=EventSerializer(),
        min_length=1,
        max_length=MAX_EVENTS,
        help_text=f"1 to {MAX_EVENTS} events, at most 256 KB in all.",
    )


class AcceptedSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField(help_text="Events handed to the ingest queue, each counted once.")
    ignored = serializers.ChoiceField(
        choices=["bot"],
        required=False,
        help_text="Present when the batch is not counted at all (accepted is 0). bot: a publishable-key request "
        "whose User-Agent is a known crawler, link previewer or monitor. Secret-key calls are never ignored.",
    )
    demand_ignored = serializers.IntegerField(
        help_text="Of the accepted events, those that occurred more than ANALYTICS_DEMAND_MAX_AGE_SECONDS "
        "(15 minutes by default) before they were received: stored and counted, but left out of the demand signal."
    )


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
            400: _error(
                "Invalid JSON (or a body that is not UTF-8) or events; details name each bad event by index and "
                "field. event_too_old. Nothing of a refused batch is queued; an accepted one is counted in full."
            ),
            403: _error("origin_not_allowed (no CORS headers are sent)."),
            413: _error("The body is over 256 KB."),
            415: _error("Send application/json or text/plain (what navigator.sendBeacon sends)."),
            503: _error(
                "broker_unavailable: nothing was stored; send again after Retry-After seconds. "
                "database_unavailable: the database is away and this key was not seen before it went."
            ),
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
