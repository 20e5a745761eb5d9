"""The pause switch and the guardrail / rounding policy of a retailer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.errors import ApiError
from app.input_fields import StrictCharField
from app.tenancy.audit import actor_for_request
from app.tenancy.authentication import auth_context
from pricing.apis.fields import RepricingJobOutputSerializer
from pricing.selectors import policy_get
from pricing.services import policy_update, pricing_pause_set
from pricing.services.switches import policy_json


class PauseOutputSerializer(serializers.Serializer[Any]):
    pricing_paused = serializers.BooleanField()
    job = RepricingJobOutputSerializer(allow_null=True, help_text="Records the price change of every SKU.")


def _switch(request: Request, paused: bool) -> Response:
    job = pricing_pause_set(
        retailer_id=auth_context(request).retailer_id, paused=paused, actor=actor_for_request(request)
    )
    return Response(PauseOutputSerializer({"pricing_paused": paused, "job": job}).data)


class PricingPauseApi(APIView):
    @extend_schema(request=None, responses=PauseOutputSerializer, summary="Pause dynamic pricing: base prices at once")
    def post(self, request: Request) -> Response:
        return _switch(request, paused=True)


class PricingResumeApi(APIView):
    @extend_schema(request=None, responses=PauseOutputSerializer, summary="Resume dynamic pricing: the rules apply")
    def post(self, request: Request) -> Response:
        return _switch(request, paused=False)


class PolicySerializer(serializers.Serializer[Any]):
    min_margin_percent = StrictCharField(required=False, help_text="Floor = cost x (1 + margin / 100).")
    max_daily_change_percent = StrictCharField(required=False, allow_null=True, help_text="null: no limit.")
    rounding_step = StrictCharField(required=False, allow_null=True, help_text='"1" with ending "0.99": charm.')
    rounding_ending = StrictCharField(required=False)


class PricingPolicyApi(APIView):
    class OutputSerializer(PolicySerializer):
        job = RepricingJobOutputSerializer(required=False)

    @extend_schema(responses=PolicySerializer, summary="Guardrails and rounding")
    def get(self, request: Request) -> Response:
        return Response(policy_json(policy_get(retailer_id=auth_context(request).retailer_id)))

    @extend_schema(
        request=PolicySerializer,
        responses={202: OutputSerializer},
        examples=[
            OpenApiExample(
                "Charm prices, 10% margin, 20% a day at most",
                request_only=True,
                value={
                    "min_margin_percent": "10",
                    "max_daily_change_percent": "20",
                    "rounding_step": "1",
                    "rounding_ending": "0.99",
                },
            )
        ],
        summary="Change guardrails / rounding; 202 with the repricing job",
    )
    def put(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ApiError("validation_failed", "Send a JSON object of policy fields.")
        policy, job = policy_update(
            retailer_id=auth_context(request).retailer_id, data=dict(request.data), actor=actor_for_request(request)
        )
        body = {**policy_json(policy), "job": RepricingJobOutputSerializer(job).data}
        response = Response(body, status=status.HTTP_202_ACCEPTED)
        response["Location"] = body["job"]["url"]
        return response
