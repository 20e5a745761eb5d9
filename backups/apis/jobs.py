"""Restore and verify a backup, as jobs with their own progress."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.input_fields import StrictCharField
from app.tenancy.authentication import auth_context
from backups.apis.fields import JobOutputSerializer
from backups.jobs import job_create
from backups.models import Job
from backups.paths import path_from_input
from backups.selectors import backup_get, job_get


def job_accepted(job: Job) -> Response:
    data = JobOutputSerializer(job).data
    response = Response(data, status=status.HTTP_202_ACCEPTED)
    response["Location"] = data["url"]
    return response


class BackupRestoreApi(APIView):
    class InputSerializer(serializers.Serializer[Any]):
        prefix = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
        prefix_b64 = StrictCharField(required=False, trim_whitespace=False)
        target = StrictCharField(required=False, allow_blank=True, default="", max_length=400, trim_whitespace=False)
        existing = serializers.ChoiceField(choices=Job.Existing.choices, default=Job.Existing.FAIL)

    @extend_schema(
        request=InputSerializer,
        responses={202: JobOutputSerializer},
        operation_id="backup_restore",
        summary="Restore a snapshot (or a prefix) into BACKUP_RESTORE_ROOT/<retailer>/<target>, as a job",
    )
    def post(self, request: Request, backup_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        prefix = path_from_input(text=values.get("prefix"), b64=values.get("prefix_b64"), field="prefix")
        target = path_from_input(text=values["target"], b64=None, field="target") or b""
        backup = backup_get(retailer_id=auth_context(request).retailer_id, backup_id=backup_id)
        job = job_create(
            backup=backup,
            kind=Job.Kind.RESTORE,
            prefix=prefix or b"",
            target=target.decode("utf-8", errors="surrogateescape"),
            existing=values["existing"],
        )
        return job_accepted(job)


class BackupVerifyApi(APIView):
    @extend_schema(
        request=None, responses={202: JobOutputSerializer}, summary="Re-read and check every stored chunk, as a job"
    )
    def post(self, request: Request, backup_id: int) -> Response:
        backup = backup_get(retailer_id=auth_context(request).retailer_id, backup_id=backup_id)
        return job_accepted(job_create(backup=backup, kind=Job.Kind.VERIFY))


class RestoreJobApi(APIView):
    @extend_schema(responses=JobOutputSerializer, summary="A restore job's progress")
    def get(self, request: Request, job_id: int) -> Response:
        job = job_get(retailer_id=auth_context(request).retailer_id, job_id=job_id, kind=Job.Kind.RESTORE)
        return Response(JobOutputSerializer(job).data)


class VerifyJobApi(APIView):
    @extend_schema(responses=JobOutputSerializer, summary="A verify job's progress and the problems it found")
    def get(self, request: Request, job_id: int) -> Response:
        job = job_get(retailer_id=auth_context(request).retailer_id, job_id=job_id, kind=Job.Kind.VERIFY)
        return Response(JobOutputSerializer(job).data)
