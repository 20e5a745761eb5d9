"""Start, list, read, cancel and delete backups."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.tenancy.authentication import auth_context
from app.tenancy.idempotent_requests import idempotent_post
from backups.apis.fields import BackupOutputSerializer, NewestFirst
from backups.selectors import backup_get, backup_list
from backups.services import backup_cancel, backup_delete, backup_start


def backup_response(backup: object, code: int) -> Response:
    data = BackupOutputSerializer(backup).data
    response = Response(data, status=code)
    response["Location"] = data["url"]
    return response


class BackupListApi(APIView):
    pagination_class = NewestFirst

    @extend_schema(
        responses=BackupOutputSerializer(many=True),
        operation_id="backups_list",
        summary="The retailer's backups, newest first",
    )
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        backups = backup_list(retailer_id=auth_context(request).retailer_id)
        page = paginator.paginate_queryset(backups, request, self)
        return paginator.get_paginated_response(BackupOutputSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses={202: BackupOutputSerializer, 200: BackupOutputSerializer},
        summary="Back up now: 202 with the new backup, or 200 with the one already running",
    )
    @idempotent_post
    def post(self, request: Request) -> Response:
        backup, created = backup_start(retailer_id=auth_context(request).retailer_id)
        return backup_response(backup, status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)


class BackupDetailApi(APIView):
    @extend_schema(responses=BackupOutputSerializer, summary="A backup's state and progress (rate, ETA)")
    def get(self, request: Request, backup_id: int) -> Response:
        backup = backup_get(retailer_id=auth_context(request).retailer_id, backup_id=backup_id)
        return Response(BackupOutputSerializer(backup).data)

    @extend_schema(responses={204: None}, summary="Delete a finished backup (409 while it runs)")
    def delete(self, request: Request, backup_id: int) -> Response:
        backup = backup_get(retailer_id=auth_context(request).retailer_id, backup_id=backup_id)
        backup_delete(backup=backup)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BackupCancelApi(APIView):
    @extend_schema(request=None, responses=BackupOutputSerializer, summary="Cancel a running backup (409 otherwise)")
    def post(self, request: Request, backup_id: int) -> Response:
        backup = backup_get(retailer_id=auth_context(request).retailer_id, backup_id=backup_id)
        return Response(BackupOutputSerializer(backup_cancel(backup=backup)).data)
