"""Compare two snapshots of one retailer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.tenancy.authentication import auth_context
from backups.diffs import DIFF_MAX_PATHS, snapshot_diff
from backups.paths import path_b64, path_text
from backups.selectors import backup_get


class PathSerializer(serializers.Serializer[Any]):
    path = serializers.CharField()
    path_b64 = serializers.CharField()


def _paths(paths: list[bytes]) -> list[dict[str, str]]:
    return [{"path": path_text(path), "path_b64": path_b64(path)} for path in paths]


class BackupDiffApi(APIView):
    class OutputSerializer(serializers.Serializer[Any]):
        added = PathSerializer(many=True, help_text=f"In this backup, not in the other (at most {DIFF_MAX_PATHS}).")
        removed = PathSerializer(many=True, help_text="In the other backup, not in this one.")
        changed = PathSerializer(many=True, help_text="In both, with another size, SHA-256, mode or link target.")
        counts = serializers.DictField(child=serializers.IntegerField(), help_text="The full counts.")

    @extend_schema(responses=OutputSerializer, summary="Paths added, removed and changed since another backup")
    def get(self, request: Request, backup_id: int, other_id: int) -> Response:
        retailer_id = auth_context(request).retailer_id
        backup = backup_get(retailer_id=retailer_id, backup_id=backup_id)
        other = backup_get(retailer_id=retailer_id, backup_id=other_id)
        diff = snapshot_diff(backup=backup, other=other)
        body = {
            "added": _paths(diff.added),
            "removed": _paths(diff.removed),
            "changed": _paths(diff.changed),
            "counts": diff.counts,
        }
        return Response(self.OutputSerializer(body).data)
