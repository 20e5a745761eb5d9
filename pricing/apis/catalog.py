"""Products, their price history and the inputs that move prices (competitor prices, demand)."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.errors import ApiError
from app.input_fields import StrictCharField
from app.middleware import body_limit
from app.tenancy.audit import actor_for_request
from app.tenancy.authentication import auth_context
from app.tenancy.idempotent_requests import idempotent_post
from pricing.apis.fields import (
    BySkuPagination,
    MoneyField,
    NewestFirstPagination,
    RepricingJobOutputSerializer,
)
from pricing.money import amount_format
from pricing.rules.experiment import NAME as VARIANT_NAME
from pricing.selectors import price_history_list, price_prior_lowest, product_get, product_list, snapshot_get
from pricing.services import competitor_price_set, demand_signal_set, product_upsert, products_bulk_upsert
from pricing.services.products import BULK_MAX_ROWS
from pricing.services.signals import demand_signal_clean

# 10,000 products of ~250 bytes of JSON each, with room to spare.
BULK_BODY_LIMIT = 8 * 1024 * 1024

PRODUCT_EXAMPLE = {
    "name": "Trail shoe",
    "currency": "USD",
    "base_price": "89.00",
    "cost": "41.50",
    "list_price": "119.00",
    "inventory": 37,
    "active": True,
}


class ProductInputSerializer(serializers.Serializer[Any]):
    """For the docs: amounts are strings with at most the currency's minor units."""

    name = StrictCharField(max_length=200)
    currency = StrictCharField(required=False, help_text="ISO 4217; default: the retailer's currency.")
    base_price = StrictCharField()
    cost = StrictCharField(required=False, allow_null=True)
    list_price = StrictCharField(required=False, allow_null=True, help_text="The ceiling of every price.")
    inventory = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    active = serializers.BooleanField(required=False, default=True)


class ProductOutputSerializer(serializers.Serializer[Any]):
    sku = serializers.CharField()
    name = serializers.CharField()
    currency = serializers.CharField()
    base_price = MoneyField()
    cost = MoneyField(allow_null=True)
    list_price = MoneyField(allow_null=True)
    inventory = serializers.IntegerField(allow_null=True)
    active = serializers.BooleanField()
    updated_at = serializers.DateTimeField()


class SnapshotOutputSerializer(serializers.Serializer[Any]):
    price = MoneyField(source="effective_price", help_text="What shoppers see now (the first variant).")
    prices = serializers.DictField(child=serializers.CharField(), help_text='Per experiment variant; "_" without one.')
    version = serializers.IntegerField()
    steps = serializers.DictField(child=serializers.ListField(child=serializers.DictField()))


class ProductListApi(APIView):
    pagination_class = BySkuPagination  # drf-spectacular documents its parameters and page shape

    @extend_schema(
        responses=ProductOutputSerializer(many=True),
        operation_id="products_list",
        summary="List products (cursor pagination, by SKU)",
    )
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(product_list(retailer_id=auth_context(request).retailer_id), request, self)
        return paginator.get_paginated_response(ProductOutputSerializer(page, many=True).data)


class ProductDetailApi(APIView):
    class OutputSerializer(ProductOutputSerializer):
        price = SnapshotOutputSerializer(allow_null=True)

    @extend_schema(responses=OutputSerializer, summary="One product and its current price")
    def get(self, request: Request, sku: str) -> Response:
        retailer_id = auth_context(request).retailer_id
        product = product_get(retailer_id=retailer_id, sku=sku)
        product.price = snapshot_get(retailer_id=retailer_id, sku=sku)  # type: ignore[attr-defined]
        return Response(self.OutputSerializer(product).data)

    @extend_schema(
        request=ProductInputSerializer,
        responses={200: OutputSerializer, 201: OutputSerializer},
        examples=[OpenApiExample("A product", value=PRODUCT_EXAMPLE, request_only=True)],
        summary="Create or replace a product; answers with the recomputed price",
    )
    def put(self, request: Request, sku: str) -> Response:
        result = product_upsert(
            retailer_id=auth_context(request).retailer_id, sku=sku, data=request.data, actor=actor_for_request(request)
        )
        result.product.price = result.snapshot  # type: ignore[attr-defined]
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(self.OutputSerializer(result.product).data, status=code)


@body_limit(BULK_BODY_LIMIT)
class ProductBulkApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        products = serializers.ListField(child=ProductInputSerializer(), min_length=1, max_length=BULK_MAX_ROWS)

    class OutputSerializer(serializers.Serializer[Any]):
        created = serializers.IntegerField()
        updated = serializers.IntegerField()
        unchanged = serializers.IntegerField()
        job = RepricingJobOutputSerializer(allow_null=True, help_text="Prices the changed products.")

    @extend_schema(
        request=InputSerializer,
        responses=OutputSerializer,
        summary="Create or replace up to 10,000 products, all or nothing (400 lists every bad row)",
    )
    @idempotent_post
    def post(self, request: Request) -> Response:
        rows = request.data.get("products") if isinstance(request.data, dict) else None
        result = products_bulk_upsert(
            retailer_id=auth_context(request).retailer_id, rows=rows, actor=actor_for_request(request)
        )
        return Response(self.OutputSerializer(result).data)


VARIANT_PARAMETER = OpenApiParameter(
    "variant",
    str,
    pattern=VARIANT_NAME.ecmascript,
    description="An experiment variant's own history; default: the price shown without a variant",
)


def _variant(request: Request) -> str:
    variant = request.query_params.get("variant")
    if variant is None:
        return ""
    if not VARIANT_NAME.matches(variant):
        raise ApiError("malformed_request", f"variant must match {VARIANT_NAME.body}.")
    return variant


class PriceHistoryApi(APIView):
    class OutputSerializer(serializers.Serializer[Any]):
        price = MoneyField()
        currency = serializers.CharField()
        version = serializers.IntegerField()
        reason = serializers.CharField()
        at = serializers.DateTimeField()

    pagination_class = NewestFirstPagination

    @extend_schema(
        parameters=[VARIANT_PARAMETER],
        responses=OutputSerializer(many=True),
        operation_id="price_history_list",
        summary="Every change of a SKU's price, newest first",
    )
    def get(self, request: Request, sku: str) -> Response:
        retailer_id = auth_context(request).retailer_id
        product_get(retailer_id=retailer_id, sku=sku)
        history = price_history_list(retailer_id=retailer_id, sku=sku, variant=_variant(request))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(history, request, self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


PRIOR_PRICE_DEFINITION = (
    "The reference a retailer shows beside a price reduction (EU Omnibus, Directive 2019/2161 art. 6a): "
    "the lowest price applied in the `days` days **before** the current price took effect (`price_since`). "
    "The current price is not part of it, so during a discount this is the price before the discount. "
    "The price in effect when the window opened counts, as does every change inside it. "
    "A second reduction within the window is measured against the lowest price before it, the first "
    "reduction included. After a rise, it is still the lowest price before the rise, and `reduced` is false. "
    "A SKU with a shorter history is measured over what it has; one that never had another price answers its "
    "current price with `reduced` false. With `variant`, the same for one experiment variant's own prices."
)


class LowestPriceApi(APIView):
    class QuerySerializer(serializers.Serializer[Any]):
        days = serializers.IntegerField(min_value=1, max_value=365, default=30, help_text="1 to 365 days.")

    class OutputSerializer(serializers.Serializer[Any]):
        sku = serializers.CharField()
        variant = serializers.CharField(allow_null=True, help_text="The experiment variant asked for, if any.")
        days = serializers.IntegerField()
        price = serializers.CharField(help_text="The price shown now.")
        price_since = serializers.DateTimeField(help_text="When the price shown now took effect.")
        lowest_price = serializers.CharField(
            help_text="The lowest price applied in the `days` days before `price_since` (the current price "
            "is not part of it); the current price when the SKU never had another."
        )
        reduced = serializers.BooleanField(help_text="`price` is below `lowest_price`: show it as the prior price.")
        currency = serializers.CharField()
        since = serializers.DateTimeField(help_text="The window's start: `price_since` minus `days`.")

    @extend_schema(
        parameters=[QuerySerializer, VARIANT_PARAMETER],
        responses=OutputSerializer,
        summary="The prior price beside a reduction (EU Omnibus): the lowest of the 30 days before the current price",
        description=PRIOR_PRICE_DEFINITION,
    )
    def get(self, request: Request, sku: str) -> Response:
        retailer_id = auth_context(request).retailer_id
        product_get(retailer_id=retailer_id, sku=sku)
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        days = query.validated_data["days"]
        variant = _variant(request)
        reference = price_prior_lowest(retailer_id=retailer_id, sku=sku, variant=variant, days=days)
        if reference is None:
            raise ApiError(
                "not_found", f"{sku} has no price history{' for variant ' + variant if variant else ''} yet."
            )
        currency = reference.currency
        body = {
            "sku": sku,
            "variant": variant or None,
            "days": days,
            "price": amount_format(reference.price, currency),
            "price_since": reference.price_since,
            "lowest_price": amount_format(reference.lowest_price, currency),
            "reduced": reference.reduced,
            "currency": currency,
            "since": reference.since,
        }
        return Response(self.OutputSerializer(body).data)


class CompetitorPriceApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        competitor = StrictCharField(validators=[RegexValidator(r"^[A-Za-z0-9._:-]{1,100}$")])
        price = StrictCharField(help_text="In the product's currency.")

    @extend_schema(
        request=InputSerializer,
        responses=SnapshotOutputSerializer,
        summary="Record a competitor's price for a SKU; answers with the recomputed price",
    )
    def put(self, request: Request, sku: str) -> Response:
        retailer_id = auth_context(request).retailer_id
        product = product_get(retailer_id=retailer_id, sku=sku)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        snapshot = competitor_price_set(
            retailer_id=retailer_id,
            sku=sku,
            competitor=data.validated_data["competitor"],
            price=request.data.get("price"),
            currency=product.currency,
            actor=actor_for_request(request),
        )
        return Response(SnapshotOutputSerializer(snapshot).data)


class DemandSignalApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        signal = StrictCharField(help_text='1.0000 = normal demand, 2.0000 = double; e.g. "1.2500".')

    class OutputSerializer(serializers.Serializer[Any]):
        sku = serializers.CharField()
        signal = serializers.CharField()
        price_changed = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer, summary="Set a SKU's demand signal")
    def put(self, request: Request, sku: str) -> Response:
        retailer_id = auth_context(request).retailer_id
        product_get(retailer_id=retailer_id, sku=sku)
        raw = request.data.get("signal") if isinstance(request.data, dict) else None
        signal = demand_signal_clean(raw)
        changed = demand_signal_set(retailer_id=retailer_id, sku=sku, signal=signal, actor=actor_for_request(request))
        return Response({"sku": sku, "signal": str(signal), "price_changed": changed})
