"""OpenAPI description of the price lookups, which are served by the plain views in ``pricing.hotpath``.

The views below document the same operations and delegate to the plain views;
:func:`app.schema.documented` attaches them to the routed plain views so drf-spectacular
lists the hot path in ``/v1/schema`` without DRF sitting on it.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from pricing.hotpath import EXPLAIN, MAX_SKUS, MAX_VISITOR_LENGTH, price_detail, price_list
from pricing.skus import SKU

SKUS_PATTERN = f"^(?:{SKU.body})(?:,(?:{SKU.body})){{0,{MAX_SKUS - 1}}}$"  # the SKU rule, 1 to MAX_SKUS times

COMMON_PARAMETERS = [
    OpenApiParameter("key", str, description="Publishable key pk_… (browsers); servers send Bearer sk_… instead."),
    OpenApiParameter(
        "visitor",
        {"type": "string", "maxLength": MAX_VISITOR_LENGTH},
        description="Visitor id for deterministic A/B bucketing; longer, or holding a NUL: 400.",
    ),
    OpenApiParameter(
        "explain",
        str,
        enum=[EXPLAIN],
        description="1: add the steps that produced each price (secret key only: the steps show cost, margin "
        "floor, inventory and competitor prices; with a publishable key the answer has no steps).",
    ),
]


class PriceSerializer(serializers.Serializer[Any]):
    sku = serializers.CharField()
    price = serializers.CharField(help_text="Decimal string with the currency's minor units.")
    currency = serializers.CharField()
    variant = serializers.CharField(required=False, help_text="The experiment variant, when one applies.")
    stale = serializers.BooleanField(help_text="True when answered from PostgreSQL while Redis is unreachable.")
    steps = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="With explain=1 and a secret key."
    )


class PriceListSerializer(serializers.Serializer[Any]):
    prices = PriceSerializer(many=True)
    missing = serializers.ListField(child=serializers.CharField(), help_text="Unknown or inactive SKUs.")


class PriceDetailApi(APIView):
    publishable_allowed = True

    @extend_schema(
        parameters=COMMON_PARAMETERS,
        responses=PriceSerializer,
        examples=[
            OpenApiExample(
                "A price",
                response_only=True,
                value={"sku": "SKU-1", "price": "19.99", "currency": "USD", "stale": False},
            )
        ],
        operation_id="price_retrieve",
        summary="The current price of one SKU (404 unknown_sku)",
    )
    def get(self, request: Request, sku: str) -> HttpResponse:
        return price_detail(request._request, sku)


class PriceListApi(APIView):
    publishable_allowed = True

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "skus",
                {"type": "string", "pattern": SKUS_PATTERN},
                required=True,
                description=f"1 to {MAX_SKUS} comma-separated SKUs.",
            ),
            *COMMON_PARAMETERS,
        ],
        responses=PriceListSerializer,
        examples=[
            OpenApiExample(
                "Prices for a page",
                response_only=True,
                value={
                    "prices": [
                        {"sku": "SKU-1", "price": "19.99", "currency": "USD", "stale": False},
                        {"sku": "SKU-2", "price": "5.49", "currency": "USD", "variant": "B", "stale": False},
                    ],
                    "missing": ["SKU-404"],
                },
            )
        ],
        operation_id="prices_list",
        summary="Prices of up to 100 SKUs in one call (one page view)",
    )
    def get(self, request: Request) -> HttpResponse:
        return price_list(request._request)
