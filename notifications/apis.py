"""HTTP API of notifications (secret key): webhook endpoints and their deliveries.

The signing secret is in the answer of create and rotate only; no copy of it is kept
but the encrypted one, and it is never logged.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.errors import ApiError
from app.input_fields import StrictBooleanField, StrictCharField
from app.pagination import CursorPage
from app.tenancy.authentication import auth_context
from app.tenancy.selectors import retailer_get
from notifications.events import EVENT_TYPES
from notifications.models import Delivery
from notifications.selectors import delivery_get, delivery_list, endpoint_get, endpoint_list
from notifications.services.endpoints import (
    endpoint_create,
    endpoint_delete,
    endpoint_secret_rotate,
    endpoint_update,
)
from notifications.services.replay import ReplayFilter, deliveries_replay, delivery_retry, endpoint_ping
from notifications.urls_check import URL_MAX_LENGTH

ERRORS_400 = OpenApiResponse(description="`invalid_url`, `private_address`, `unknown_event_type`, `validation_failed`")
NOT_FOUND = OpenApiResponse(description="`not_found`: no such endpoint of yours.")


class EndpointOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.CharField()
    description = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    last_success_at = serializers.DateTimeField(allow_null=True)
    consecutive_failures = serializers.IntegerField()


class EndpointSecretOutputSerializer(EndpointOutputSerializer):
    secret = serializers.CharField(help_text="The signing secret (whsec_…), shown only in this answer.")


class EndpointInputSerializer(serializers.Serializer[Any]):
    url = StrictCharField(max_length=URL_MAX_LENGTH * 2, trim_whitespace=False)
    event_types = serializers.ListField(
        child=StrictCharField(max_length=64),
        max_length=len(EVENT_TYPES) * 2,
        help_text=f"Any of: {', '.join(EVENT_TYPES)}.",
    )
    description = StrictCharField(max_length=200, required=False, allow_blank=True)


class EndpointUpdateSerializer(EndpointInputSerializer):
    url = StrictCharField(max_length=URL_MAX_LENGTH * 2, trim_whitespace=False, required=False)
    event_types = serializers.ListField(
        child=StrictCharField(max_length=64), max_length=len(EVENT_TYPES) * 2, required=False
    )
    enabled = StrictBooleanField(required=False)


def _retailer_id(request: Request) -> int:
    return auth_context(request).retailer_id


class EndpointListApi(APIView):
    @extend_schema(responses=EndpointOutputSerializer(many=True), summary="List your webhook endpoints")
    def get(self, request: Request) -> Response:
        return Response(EndpointOutputSerializer(endpoint_list(retailer_id=_retailer_id(request)), many=True).data)

    @extend_schema(
        request=EndpointInputSerializer,
        responses={
            201: EndpointSecretOutputSerializer,
            400: ERRORS_400,
            409: OpenApiResponse(description="`endpoint_exists`"),
            422: OpenApiResponse(description="`too_many_endpoints`"),
        },
        summary="Subscribe a URL to event types; the answer shows its signing secret once",
    )
    def post(self, request: Request) -> Response:
        data = EndpointInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = endpoint_create(retailer=retailer_get(retailer_id=_retailer_id(request)), **data.validated_data)
        body = {**EndpointOutputSerializer(issued.endpoint).data, "secret": issued.secret}
        return Response(body, status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    @extend_schema(responses={200: EndpointOutputSerializer, 404: NOT_FOUND}, summary="One webhook endpoint")
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = endpoint_get(retailer_id=_retailer_id(request), endpoint_id=endpoint_id)
        return Response(EndpointOutputSerializer(endpoint).data)

    @extend_schema(
        request=EndpointUpdateSerializer,
        responses={
            200: EndpointOutputSerializer,
            400: ERRORS_400,
            404: NOT_FOUND,
            409: OpenApiResponse(description="`endpoint_exists`"),
        },
        summary="Change a webhook endpoint (url, event types, description, enabled)",
    )
    def patch(self, request: Request, endpoint_id: int) -> Response:
        data = EndpointUpdateSerializer(data=request.data)  # the body first: bad input is a 400 on any id
        data.is_valid(raise_exception=True)
        endpoint = endpoint_get(retailer_id=_retailer_id(request), endpoint_id=endpoint_id)
        return Response(EndpointOutputSerializer(endpoint_update(endpoint=endpoint, changes=data.validated_data)).data)

    @extend_schema(responses={204: None, 404: NOT_FOUND}, summary="Delete a webhook endpoint and its deliveries")
    def delete(self, request: Request, endpoint_id: int) -> Response:
        endpoint_delete(endpoint=endpoint_get(retailer_id=_retailer_id(request), endpoint_id=endpoint_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateApi(APIView):
    @extend_schema(
        request=None,
        responses={200: EndpointSecretOutputSerializer, 404: NOT_FOUND},
        summary="New signing secret (shown once); the old one also signs during the grace period",
    )
    def post(self, request: Request, endpoint_id: int) -> Response:
        endpoint = endpoint_get(retailer_id=_retailer_id(request), endpoint_id=endpoint_id)
        issued = endpoint_secret_rotate(endpoint=endpoint)
        return Response({**EndpointOutputSerializer(issued.endpoint).data, "secret": issued.secret})


class AttemptOutputSerializer(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    attempted_at = serializers.DateTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    response_excerpt = serializers.CharField()
    duration_ms = serializers.IntegerField()
    error = serializers.CharField()
    outcome = serializers.CharField()


class DeliveryOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    event_id = serializers.CharField(source="event.public_id", help_text="The webhook-id of every send.")
    event_type = serializers.CharField(source="event.event_type")
    state = serializers.ChoiceField(choices=Delivery.State.choices)
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    attempt_rows = AttemptOutputSerializer(many=True)


class NewestDeliveriesFirst(CursorPage):
    """Newest first by id (unique and increasing, so a page never repeats or skips a row
    while deliveries are added); ``next`` links to the older ones."""

    ordering = ("-id",)
    page_size = 50
    max_page_size = 200
    page_size_query_param = "page_size"

    def position_readable(self, position: str) -> bool:
        return position.isascii() and position.isdigit() and len(position) <= 18


class DeliveryListApi(APIView):
    pagination_class = NewestDeliveriesFirst

    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=Delivery.State.values, required=False)],
        responses={200: DeliveryOutputSerializer(many=True), 404: NOT_FOUND},
        summary="An endpoint's deliveries with their attempts, newest first (cursor-paginated)",
    )
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = endpoint_get(retailer_id=_retailer_id(request), endpoint_id=endpoint_id)
        state = request.query_params.get("state")
        if state is not None and state not in Delivery.State.values:
            raise ApiError("validation_failed", details=[{"field": "state", "known": Delivery.State.values}])
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(delivery_list(endpoint=endpoint, state=state), request, self)
        return paginator.get_paginated_response(DeliveryOutputSerializer(page, many=True).data)


class DeliveryRetryApi(APIView):
    @extend_schema(
        request=None,
        responses={
            202: DeliveryOutputSerializer,
            404: OpenApiResponse(description="`not_found`"),
            409: OpenApiResponse(description="`delivery_in_flight`"),
        },
        summary="Send one delivery again now",
    )
    def post(self, request: Request, delivery_id: int) -> Response:
        delivery = delivery_retry(delivery=delivery_get(retailer_id=_retailer_id(request), delivery_id=delivery_id))
        return Response(DeliveryOutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class EndpointPingApi(APIView):
    @extend_schema(
        request=None,
        responses={202: DeliveryOutputSerializer, 404: NOT_FOUND},
        summary="Send a signed test event (ping) to this endpoint",
    )
    def post(self, request: Request, endpoint_id: int) -> Response:
        delivery = endpoint_ping(endpoint=endpoint_get(retailer_id=_retailer_id(request), endpoint_id=endpoint_id))
        return Response(DeliveryOutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class EndpointReplayApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        event_types = serializers.ListField(
            child=StrictCharField(max_length=64), required=False, default=list, max_length=len(EVENT_TYPES) * 2
        )
        since = serializers.DateTimeField(required=False, allow_null=True, default=None)
        until = serializers.DateTimeField(required=False, allow_null=True, default=None)
        states = serializers.ListField(
            child=serializers.ChoiceField(choices=Delivery.State.values), required=False, default=list, max_length=10
        )
        dry_run = StrictBooleanField(required=False, default=True)

    class OutputSerializer(serializers.Serializer[Any]):
        matched = serializers.IntegerField()
        dry_run = serializers.BooleanField()

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(description="`conflict`: enable the endpoint first"),
        },
        summary="Send matching deliveries again (dry_run, the default, only counts them)",
    )
    def post(self, request: Request, endpoint_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = endpoint_get(retailer_id=_retailer_id(request), endpoint_id=endpoint_id)
        values = data.validated_data
        replay = ReplayFilter(
            event_types=values["event_types"], since=values["since"], until=values["until"], states=values["states"]
        )
        matched = deliveries_replay(endpoint=endpoint, replay=replay, dry_run=values["dry_run"])
        return Response({"matched": matched, "dry_run": values["dry_run"]})
