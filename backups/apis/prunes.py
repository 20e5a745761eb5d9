"""Prune a retailer's repository: expire backups past retention, remove what nothing needs."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.tenancy.authentication import auth_context
from app.tenancy.idempotent_requests import idempotent_post
from backups.models import Prune
from backups.pruning import prune_request
from backups.selectors import prune_get


class PruneOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    state = serializers.ChoiceField(
        choices=Prune.State.choices, help_text="waiting: a backup runs; the prune goes on when it ends."
    )
    phase = serializers.ChoiceField(choices=Prune.Phase.choices)
    backups_expired = serializers.IntegerField(help_text="Done backups past retention, deleted.")
    chunks_deleted = serializers.IntegerField(help_text="Chunks no remaining snapshot names, removed from the index.")
    packs_deleted = serializers.IntegerField()
    packs_rewritten = serializers.IntegerField(help_text="Packs rewritten without their dead chunks.")
    orphans_deleted = serializers.IntegerField(help_text="Stored objects no row named (left by a crash).")
    bytes_freed = serializers.IntegerField()
    error_code = serializers.CharField()
    error_message = serializers.CharField()
    created_at = serializers.DateTimeField()
    swept_at = serializers.DateTimeField(allow_null=True, help_text="When the sweep ran; never while a backup runs.")
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, prune: Prune) -> str:
        return reverse("backups:prune", kwargs={"prune_id": prune.pk})


class PruneListApi(APIView):
    @extend_schema(
        request=None,
        responses={202: PruneOutputSerializer, 200: PruneOutputSerializer},
        operation_id="prunes_create",
        summary="Prune now: 202 with the new prune, or 200 with the one already open",
    )
    @idempotent_post
    def post(self, request: Request) -> Response:
        prune, created = prune_request(retailer_id=auth_context(request).retailer_id)
        data = PruneOutputSerializer(prune).data
        response = Response(data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)
        response["Location"] = data["url"]
        return response


class PruneDetailApi(APIView):
    @extend_schema(responses=PruneOutputSerializer, operation_id="prune_get", summary="A prune's state and counts")
    def get(self, request: Request, prune_id: int) -> Response:
        prune = prune_get(retailer_id=auth_context(request).retailer_id, prune_id=prune_id)
        return Response(PruneOutputSerializer(prune).data)
