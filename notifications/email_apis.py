"""HTTP API of notification addresses (secret key) and their confirmation link (public)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.errors import ApiError
from app.tenancy.authentication import auth_context
from app.tenancy.selectors import retailer_get
from notifications.models import EmailNotification
from notifications.selectors import address_get, address_list, notification_list
from notifications.services.addresses import address_add, address_confirm, address_remove

NOTIFICATION_PAGE = 100


class AddressOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    confirmed = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_confirmed(self, address: Any) -> bool:
        return address.confirmed_at is not None


def _confirm_base_url(request: Request) -> str:
    path = reverse("notification-address-confirm")
    return settings.PUBLIC_BASE_URL.rstrip("/") + path if settings.PUBLIC_BASE_URL else request.build_absolute_uri(path)


class AddressListApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        email = serializers.EmailField(max_length=254)

    @extend_schema(responses=AddressOutputSerializer(many=True), summary="List your notification addresses")
    def get(self, request: Request) -> Response:
        rows = address_list(retailer_id=auth_context(request).retailer_id)
        return Response(AddressOutputSerializer(rows, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: AddressOutputSerializer, 409: OpenApiResponse(description="`address_exists`")},
        summary="Add an address; it gets a confirmation link (7 days) and notifications only once confirmed",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        retailer = retailer_get(retailer_id=auth_context(request).retailer_id)
        address = address_add(
            retailer=retailer, email=data.validated_data["email"], confirm_base_url=_confirm_base_url(request)
        )
        return Response(AddressOutputSerializer(address).data, status=status.HTTP_201_CREATED)


class AddressDetailApi(APIView):
    @extend_schema(
        responses={204: None, 404: OpenApiResponse(description="`not_found`")}, summary="Remove a notification address"
    )
    def delete(self, request: Request, address_id: int) -> Response:
        address_remove(address=address_get(retailer_id=auth_context(request).retailer_id, address_id=address_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AddressConfirmApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer[Any]):
        email = serializers.EmailField()
        confirmed = serializers.BooleanField()

    @extend_schema(
        parameters=[OpenApiParameter("token", str, required=True)],
        responses={200: OutputSerializer, 400: OpenApiResponse(description="`invalid_confirmation`")},
        summary="Follow a confirmation link (sent by email; no key needed)",
    )
    def get(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        if not token or len(token) > 200:
            raise ApiError("invalid_confirmation")
        address = address_confirm(token=token)
        return Response({"email": address.email, "confirmed": True})


class NotificationOutputSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    to_email = serializers.EmailField()
    state = serializers.ChoiceField(choices=EmailNotification.State.choices)
    attempts = serializers.IntegerField()
    next_attempt_at = serializers.DateTimeField(
        help_text="When a pending notification is tried (again): after a 4xx or an SMTP server away, "
        "10 s doubling to 30 min, 9 attempts in all; for the others, when its last attempt came due."
    )
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    message_id = serializers.CharField()


class NotificationListApi(APIView):
    @extend_schema(
        responses=NotificationOutputSerializer(many=True),
        summary=f"Your newest {NOTIFICATION_PAGE} email notifications and their state",
    )
    def get(self, request: Request) -> Response:
        rows = notification_list(retailer_id=auth_context(request).retailer_id)[:NOTIFICATION_PAGE]
        return Response(NotificationOutputSerializer(rows, many=True).data)
