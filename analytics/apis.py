"""HTTP API of the analytics app: event ingestion (a plain view, hot path) and reads (DRF).

``POST /v1/events`` is a plain Django view with msgspec validation: the
ingestion benchmark (``bench/ingest_bench.py``) needs it, and its OpenAPI
description is written by hand in :mod:`analytics.openapi`.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.demand import demand_signals
from analytics.demand_caps import EXEMPT, demand_horizon
from analytics.retention import window_start
from analytics.selectors import retailer_summary, sku_counts
from analytics.tasks import events_ingest_batch
from analytics.validation import batch_validate
from app.client_identity import request_client_hash
from app.errors import ApiError, error_response
from app.middleware import body_limit
from app.tenancy.authentication import AuthContext, auth_context, request_authenticate
from app.tenancy.cors import cors_apply
from app.tenancy.ratelimit import rate_limit_check
from workers.publish import publish_or_unavailable

MAX_BATCH_BYTES = 256 * 1024
ACCEPTED_MEDIA_TYPES = frozenset({"application/json", "text/plain"})
DEFAULT_WINDOW = timedelta(hours=24)
# Crawlers, link previewers and monitors on a publishable key: answered 202 with "ignored": "bot"
# and not counted (see bot_ignored). "bot" must end a word
# (Googlebot/2.1, bingbot/2.0, AdsBot-Google, TelegramBot (...)) but not be the end of "CUBOT", a
# phone brand whose Android user agents say "CUBOT X30". HeadlessChrome is a shopper here.
KNOWN_BOTS = re.compile(
    r"(?<!cu)bot\b|spider|crawl|slurp|archiver|facebookexternalhit|bingpreview|mediapartners|lighthouse|"
    r"pingdom|uptimerobot|python-requests|curl/|wget/",
    re.IGNORECASE,
)


def _json(body: dict[str, Any], status: int) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def bot_ignored(request: HttpRequest, context: AuthContext) -> bool:
    """Whether a batch comes from a crawler and is not counted.

    Bot filtering is about shoppers' browsers, which send the publishable key: a page
    rendered by Googlebot or a link previewer beacons like a shopper. A secret key is a
    retailer's own server, which calls from ``curl``, ``python-requests`` or anything
    else and is never a bot: its events are always counted.
    """
    return not context.is_secret and KNOWN_BOTS.search(request.META.get("HTTP_USER_AGENT", "")) is not None


def _ingest(request: HttpRequest, context: AuthContext) -> HttpResponse:
    if request.method != "POST":
        raise ApiError("method_not_allowed", "Send events with POST.", headers={"Allow": "POST"})
    if request.content_type not in ACCEPTED_MEDIA_TYPES:
        raise ApiError("unsupported_media_type", "Send the batch as application/json or text/plain.")
    rate_limit_check(context, request)
    if bot_ignored(request, context):
        return _json({"accepted": 0, "demand_ignored": 0, "ignored": "bot"}, 202)
    received_at = timezone.now()
    events = batch_validate(request.body, oldest=window_start(received_at))
    horizon = demand_horizon(received_at)
    # 202 only once the broker holds the batch; BrokerUnavailableError is a 503 with Retry-After.
    publish_or_unavailable(
        events_ingest_batch,
        idempotency_key=f"events:{uuid.uuid4().hex}",
        retailer_id=context.retailer_id,
        batch=request.body.decode(),
        received_at=received_at.isoformat(),
        contributor=EXEMPT if context.is_secret else request_client_hash(request),
    )
    demand_ignored = sum(1 for event in events if event.ts < horizon)
    return _json({"accepted": len(events), "demand_ignored": demand_ignored}, 202)


@csrf_exempt
@body_limit(MAX_BATCH_BYTES)
def events_ingest_view(request: HttpRequest) -> HttpResponse:
    """``POST /v1/events?key=pk_…``: a batch of up to 500 events; 202 once the broker holds it."""
    context: AuthContext | None = None
    try:
        context = request_authenticate(request, secret_required=False)
        response = _ingest(request, context)
    except ApiError as error:
        response = error_response(error)
    cors_apply(request, response, context)
    if response.has_header("Access-Control-Allow-Origin"):
        response["Access-Control-Expose-Headers"] = "Retry-After"  # the insert's backoff reads it
    return response


def _window(request: Request) -> tuple[datetime, datetime]:
    until = timezone.now()
    raw = request.query_params.get("since")
    if raw is None:
        return until - DEFAULT_WINDOW, until
    try:
        since = datetime.fromisoformat(raw)
    except ValueError as error:
        raise ApiError(
            "validation_failed",
            "since must be an ISO 8601 time with a zone, e.g. 2025-01-31T12:00:00Z.",
            details=[{"field": "since", "code": "invalid", "message": str(error)}],
        ) from error
    if since.tzinfo is None:
        raise ApiError(
            "validation_failed",
            "since needs a time zone (Z or ±hh:mm).",
            details=[{"field": "since", "code": "invalid", "message": "no time zone"}],
        )
    try:
        return since.astimezone(UTC), until  # PostgreSQL takes zone offsets up to 15:59 only
    except OverflowError as error:  # e.g. 0001-01-01T00:00+05:00 is before year 1 in UTC
        raise ApiError(
            "validation_failed",
            "since is out of range.",
            details=[{"field": "since", "code": "invalid", "message": str(error)}],
        ) from error


SINCE = OpenApiParameter(
    "since", OpenApiTypes.DATETIME, description="ISO 8601 start of the window; default: 24 hours ago."
)


class CountsSerializer(serializers.Serializer[Any]):
    page_view = serializers.IntegerField()
    product_view = serializers.IntegerField()
    add_to_cart = serializers.IntegerField()
    purchase = serializers.IntegerField()


class AnalyticsSkuApi(APIView):
    class OutputSerializer(serializers.Serializer[Any]):
        sku = serializers.CharField()
        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        counts = CountsSerializer()
        demand_signal = serializers.DecimalField(max_digits=10, decimal_places=4)

    @extend_schema(parameters=[SINCE], responses=OutputSerializer, summary="Events of one SKU in a window")
    def get(self, request: Request, sku: str) -> Response:
        retailer_id = auth_context(request).retailer_id
        since, until = _window(request)
        body = {
            "sku": sku,
            "since": since,
            "until": until,
            "counts": sku_counts(retailer_id=retailer_id, sku=sku, since=since, until=until),
            "demand_signal": demand_signals(retailer_id=retailer_id, skus=[sku], now=until)[sku],
        }
        return Response(self.OutputSerializer(body).data)


class AnalyticsSummaryApi(APIView):
    class OutputSerializer(serializers.Serializer[Any]):
        class TopSkuSerializer(serializers.Serializer[Any]):
            sku = serializers.CharField()
            activity = serializers.IntegerField(help_text="views x1 + add-to-cart x5 + purchases x20")
            counts = CountsSerializer()

        class VariantSerializer(serializers.Serializer[Any]):
            variant = serializers.CharField()
            product_views = serializers.IntegerField()
            purchases = serializers.IntegerField()
            conversion = serializers.DecimalField(
                max_digits=10, decimal_places=4, allow_null=True, help_text="purchases / product views"
            )

        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        totals = CountsSerializer()
        top_skus = TopSkuSerializer(many=True)
        variants = VariantSerializer(many=True)

    @extend_schema(parameters=[SINCE], responses=OutputSerializer, summary="Totals, top SKUs, conversion per variant")
    def get(self, request: Request) -> Response:
        since, until = _window(request)
        summary = retailer_summary(retailer_id=auth_context(request).retailer_id, since=since, until=until)
        body = {
            "since": since,
            "until": until,
            "totals": summary.totals,
            "top_skus": summary.top_skus,
            "variants": [
                {
                    "variant": row.variant,
                    "product_views": row.product_views,
                    "purchases": row.purchases,
                    "conversion": row.conversion,
                }
                for row in summary.variants
            ],
        }
        return Response(self.OutputSerializer(body).data)
