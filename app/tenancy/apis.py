"""Retailer self-service over the secret key: details, keys, origins."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.errors import ApiError
from app.input_fields import StrictCharField
from app.tenancy.audit import actor_for_request
from app.tenancy.authentication import auth_context
from app.tenancy.idempotent_requests import idempotent_post, keep_instead
from app.tenancy.models import ApiKey
from app.tenancy.selectors import key_get, retailer_get
from app.tenancy.services import ORIGIN_PATTERN, key_revoke, key_rotate, origin_add, origin_remove


class KeyOutputSerializer(serializers.Serializer[Any]):
    prefix = serializers.CharField()
    kind = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    publishable_key = serializers.CharField(source="publishable_value", allow_blank=True)


class RetailerDetailApi(APIView):
    class OutputSerializer(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        name = serializers.CharField()
        time_zone = serializers.CharField()
        pricing_paused = serializers.BooleanField()
        rate_limit_per_minute = serializers.IntegerField(allow_null=True)
        origins = serializers.SerializerMethodField()
        keys = KeyOutputSerializer(many=True)

        def get_origins(self, retailer: Any) -> list[str]:
            return sorted(origin.origin for origin in retailer.origins.all())

    @extend_schema(responses=OutputSerializer, summary="The retailer behind the secret key")
    def get(self, request: Request) -> Response:
        retailer = retailer_get(retailer_id=auth_context(request).retailer_id)
        return Response(self.OutputSerializer(retailer).data)


class KeyRotateApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        kind = serializers.ChoiceField(choices=ApiKey.Kind.values)

    class OutputSerializer(KeyOutputSerializer):
        key = serializers.CharField(
            allow_null=True,
            help_text="The new key. A secret key is shown only in this answer: a replay of it "
            "(Idempotent-Replayed: true) answers null, as no copy of a secret key is kept.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer},
        summary="Issue a new key; the old one stays valid for the grace period",
    )
    @idempotent_post
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        retailer = retailer_get(retailer_id=auth_context(request).retailer_id)
        issued = key_rotate(retailer=retailer, kind=data.validated_data["kind"], actor=actor_for_request(request))
        body = {**KeyOutputSerializer(issued.key).data, "key": issued.raw}
        response = Response(body, status=status.HTTP_201_CREATED)
        if issued.key.kind == ApiKey.Kind.SECRET:
            keep_instead(response, {**body, "key": None})  # a stored answer never holds a raw secret key
        return response


class KeyRevokeApi(APIView):
    @extend_schema(request=None, responses=KeyOutputSerializer, summary="Revoke a key at once")
    def post(self, request: Request, prefix: str) -> Response:
        key = key_get(retailer_id=auth_context(request).retailer_id, prefix=prefix)
        key_revoke(key=key, actor=actor_for_request(request))
        return Response(KeyOutputSerializer(key).data)


class OriginListApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        origin = StrictCharField(max_length=255, validators=[RegexValidator(ORIGIN_PATTERN)])

    @extend_schema(request=InputSerializer, responses={201: InputSerializer}, summary="Allow a browser origin")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        retailer = retailer_get(retailer_id=auth_context(request).retailer_id)
        allowed = origin_add(retailer=retailer, origin=data.validated_data["origin"], actor=actor_for_request(request))
        return Response({"origin": allowed.origin}, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=InputSerializer,
        responses={204: None, 404: OpenApiResponse(description="`not_found`: the origin is not on the list.")},
        summary="Remove an allowed origin",
    )
    def delete(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        retailer = retailer_get(retailer_id=auth_context(request).retailer_id)
        if not origin_remove(retailer=retailer, origin=data.validated_data["origin"], actor=actor_for_request(request)):
            raise ApiError("not_found", f"{data.validated_data['origin']!r} is not an allowed origin.")
        return Response(status=status.HTTP_204_NO_CONTENT)
