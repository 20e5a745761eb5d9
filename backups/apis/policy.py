"""A retailer's backup policy: retention (what a prune keeps) and the daily schedule."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.tenancy.authentication import auth_context
from backups.retention import policy_get, policy_update


class BackupPolicyApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        keep_last = serializers.IntegerField(required=False, min_value=1, max_value=1000)
        keep_daily = serializers.IntegerField(required=False, min_value=0, max_value=3660)
        keep_weekly = serializers.IntegerField(required=False, min_value=0, max_value=520)
        schedule_hour = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=23)

    class OutputSerializer(serializers.Serializer[Any]):
        keep_last = serializers.IntegerField(help_text="The newest N done backups are kept (at least 1).")
        keep_daily = serializers.IntegerField(help_text="The newest backup of each of the last D local days is kept.")
        keep_weekly = serializers.IntegerField(help_text="The newest backup of each of the last W ISO weeks is kept.")
        schedule_hour = serializers.IntegerField(
            allow_null=True, help_text="A backup starts daily once this local hour (0-23) comes; null: off."
        )
        last_scheduled_on = serializers.DateField(allow_null=True, help_text="Local date of the last scheduled start.")
        time_zone = serializers.CharField(source="retailer.time_zone", help_text="The retailer's, for days and hours.")

    @extend_schema(responses=OutputSerializer, operation_id="backup_policy_get", summary="Retention and schedule")
    def get(self, request: Request) -> Response:
        policy = policy_get(retailer_id=auth_context(request).retailer_id)
        return Response(self.OutputSerializer(policy).data)

    @extend_schema(
        request=InputSerializer,
        responses=OutputSerializer,
        operation_id="backup_policy_update",
        summary="Change retention or the daily schedule (fields left out stay as they are)",
    )
    def patch(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = policy_update(retailer_id=auth_context(request).retailer_id, **data.validated_data)
        return Response(self.OutputSerializer(policy).data)
