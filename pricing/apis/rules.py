"""Rules CRUD and repricing job progress. A rule change answers 202 with the job's URL."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.input_fields import StrictBooleanField, StrictCharField
from app.tenancy.audit import actor_for_request
from app.tenancy.authentication import auth_context
from app.tenancy.idempotent_requests import idempotent_post
from pricing.apis.fields import RepricingJobOutputSerializer
from pricing.models import RepricingJob, Rule
from pricing.selectors import repricing_job_get, rule_get, rule_list
from pricing.services import rule_create, rule_delete, rule_update

RULE_EXAMPLES = [
    OpenApiExample(
        "Demand",
        request_only=True,
        value={"kind": "demand", "name": "Demand", "params": {"sensitivity": "0.5", "max_multiplier": "1.3"}},
    ),
    OpenApiExample(
        "Inventory",
        request_only=True,
        value={
            "kind": "inventory",
            "name": "Scarcity",
            "params": {"scarce_at_or_below": 5, "scarcity_raise_percent": "5"},
        },
    ),
    OpenApiExample(
        "Competitor",
        request_only=True,
        value={"kind": "competitor", "name": "Undercut", "params": {"mode": "undercut", "undercut_percent": "1"}},
    ),
    OpenApiExample(
        "Schedule",
        request_only=True,
        value={
            "kind": "schedule",
            "name": "Evenings",
            "params": {"windows": [{"days": ["fri"], "start": "18:00", "end": "22:00", "adjust_percent": "-10"}]},
        },
    ),
    OpenApiExample(
        "Experiment",
        request_only=True,
        value={
            "kind": "experiment",
            "name": "Spring test",
            "skus": ["SKU-1", "SKU-2"],
            "params": {
                "key": "spring",
                "variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50, "adjust_percent": "-5"}],
            },
        },
    ),
]


class RuleOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    name = serializers.CharField()
    position = serializers.IntegerField()
    enabled = serializers.BooleanField()
    skus = serializers.ListField(child=serializers.CharField(), help_text="Empty: every product.")
    params = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RuleChangeOutputSerializer(serializers.Serializer[Any]):
    rule = RuleOutputSerializer()
    job = RepricingJobOutputSerializer()


class RuleFieldsSerializer(serializers.Serializer[Any]):
    name = StrictCharField(max_length=100)
    position = serializers.IntegerField(required=False, default=0)
    enabled = StrictBooleanField(required=False, default=True)
    skus = serializers.ListField(
        child=StrictCharField(trim_whitespace=False), required=False, max_length=10_000
    )  # "ABC\n" is refused as a SKU (invalid_sku), not trimmed into another one
    params = serializers.DictField(required=False)


def _accepted(change_data: dict[str, Any], job: RepricingJob) -> Response:
    response = Response(change_data, status=status.HTTP_202_ACCEPTED)
    response["Location"] = RepricingJobOutputSerializer(job).data["url"]
    return response


class RuleListApi(APIView):
    class InputSerializer(RuleFieldsSerializer):
        kind = serializers.ChoiceField(choices=Rule.Kind.values)

    @extend_schema(responses=RuleOutputSerializer(many=True), summary="The retailer's rules, in the order they apply")
    def get(self, request: Request) -> Response:
        rules = rule_list(retailer_id=auth_context(request).retailer_id)
        return Response(RuleOutputSerializer(rules, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={202: RuleChangeOutputSerializer},
        examples=RULE_EXAMPLES,
        summary="Create a rule; 202 with the repricing job that applies it",
    )
    @idempotent_post
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        kind = values.pop("kind")
        change = rule_create(
            retailer_id=auth_context(request).retailer_id, kind=kind, values=values, actor=actor_for_request(request)
        )
        return _accepted(RuleChangeOutputSerializer(change).data, change.job)


class RuleDetailApi(APIView):
    class InputSerializer(RuleFieldsSerializer):
        name = StrictCharField(max_length=100, required=False)
        position = serializers.IntegerField(required=False)
        enabled = StrictBooleanField(required=False)

    @extend_schema(responses=RuleOutputSerializer, summary="One rule")
    def get(self, request: Request, rule_id: int) -> Response:
        rule = rule_get(retailer_id=auth_context(request).retailer_id, rule_id=rule_id)
        return Response(RuleOutputSerializer(rule).data)

    @extend_schema(
        request=InputSerializer,
        responses={202: RuleChangeOutputSerializer},
        summary="Change some fields of a rule; 202 with the repricing job",
    )
    def patch(self, request: Request, rule_id: int) -> Response:
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        change = rule_update(
            retailer_id=auth_context(request).retailer_id,
            rule_id=rule_id,
            changes=dict(data.validated_data),
            actor=actor_for_request(request),
        )
        return _accepted(RuleChangeOutputSerializer(change).data, change.job)

    @extend_schema(responses={202: RepricingJobOutputSerializer}, summary="Delete a rule; 202 with the repricing job")
    def delete(self, request: Request, rule_id: int) -> Response:
        job = rule_delete(
            retailer_id=auth_context(request).retailer_id, rule_id=rule_id, actor=actor_for_request(request)
        )
        return _accepted(RepricingJobOutputSerializer(job).data, job)


class RepricingJobDetailApi(APIView):
    @extend_schema(responses=RepricingJobOutputSerializer, summary="Progress of a repricing job")
    def get(self, request: Request, job_id: int) -> Response:
        job = repricing_job_get(retailer_id=auth_context(request).retailer_id, job_id=job_id)
        return Response(RepricingJobOutputSerializer(job).data)
