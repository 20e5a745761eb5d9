"""Staff ops API for dead letters: ``/ops/deadletters`` (session auth, ``is_staff`` only)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.errors import ApiError
from workers.models import DeadLetter
from workers.selectors import deadletter_get, deadletter_list
from workers.services import DeadLetterNotReplayableError, deadletter_replay


class StaffApi(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAdminUser]


class DeadLetterSummarySerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    task_name = serializers.CharField()
    idempotency_key = serializers.CharField()
    queue = serializers.CharField()
    retailer_id = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    exception = serializers.CharField()
    attempts = serializers.IntegerField()
    failures = serializers.IntegerField()
    replays = serializers.IntegerField()
    first_failed_at = serializers.DateTimeField()
    last_failed_at = serializers.DateTimeField()
    last_replayed_at = serializers.DateTimeField(allow_null=True)


class DeadLetterListApi(StaffApi):
    class FilterSerializer(serializers.Serializer[Any]):
        status = serializers.ChoiceField(
            choices=DeadLetter.Status.values, required=False, allow_blank=True, help_text="Empty: any status."
        )
        task = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Empty: any task.")
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=100)

    class OutputSerializer(serializers.Serializer[Any]):
        results = DeadLetterSummarySerializer(many=True)

    @extend_schema(
        parameters=[FilterSerializer],
        responses=OutputSerializer,
        operation_id="ops_deadletters_list",
        summary="Dead letters",
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        letters = deadletter_list(
            status=filters.validated_data.get("status") or None, task_name=filters.validated_data.get("task") or None
        )
        rows = letters[: filters.validated_data["limit"]]
        return Response({"results": DeadLetterSummarySerializer(rows, many=True).data})


def _letter_or_404(deadletter_id: int) -> DeadLetter:
    letter = deadletter_get(deadletter_id=deadletter_id)
    if letter is None:
        raise ApiError("not_found", f"No dead letter {deadletter_id}.")
    return letter


class DeadLetterDetailApi(StaffApi):
    class OutputSerializer(DeadLetterSummarySerializer):
        task_id = serializers.CharField()
        kwargs = serializers.JSONField()
        traceback = serializers.CharField()
        last_replayed_by = serializers.CharField()

    @extend_schema(responses=OutputSerializer, summary="One dead letter with its arguments and traceback")
    def get(self, request: Request, deadletter_id: int) -> Response:
        return Response(self.OutputSerializer(_letter_or_404(deadletter_id)).data)


class DeadLetterReplayApi(StaffApi):
    @extend_schema(request=None, responses={202: DeadLetterSummarySerializer}, summary="Replay one dead letter")
    def post(self, request: Request, deadletter_id: int) -> Response:
        _letter_or_404(deadletter_id)
        try:
            letter = deadletter_replay(deadletter_id=deadletter_id, actor=f"staff:{request.user.get_username()}")
        except DeadLetterNotReplayableError as error:
            raise ApiError("conflict", str(error)) from error
        return Response(DeadLetterSummarySerializer(letter).data, status=status.HTTP_202_ACCEPTED)
