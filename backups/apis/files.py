"""A snapshot's files: the listing (by path bytes, paginated) and downloads (streamed)."""

from __future__ import annotations

import base64
import binascii
import os
from urllib.parse import quote

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from app.errors import ApiError
from app.tenancy.authentication import auth_context
from backups.apis.fields import FileOutputSerializer
from backups.content import file_content
from backups.downloads import byte_range, download_slot_take
from backups.exporters import export_file_name
from backups.models import Backup, FileEntry
from backups.paths import path_b64, path_from_input
from backups.selectors import backup_get, snapshot_file, snapshot_files

PAGE_SIZE, MAX_PAGE_SIZE = 500, 5000

PREFIX_PARAMETERS = [
    OpenApiParameter("prefix", str, description="Only paths at or below this one (relative; no '..')."),
    OpenApiParameter("prefix_b64", str, description="The prefix as exact bytes, base64 (names that are not UTF-8)."),
    OpenApiParameter("after_b64", str, description="Continue after this path (the page's next link sets it)."),
    OpenApiParameter("page_size", int, description=f"1 to {MAX_PAGE_SIZE}; default {PAGE_SIZE}."),
]
DOWNLOAD = OpenApiResponse(OpenApiTypes.BINARY, description="The file's bytes, streamed.")
PARTIAL = OpenApiResponse(OpenApiTypes.BINARY, description="The byte range asked for (Content-Range).")
DOWNLOAD_RESPONSES = {200: DOWNLOAD, 206: PARTIAL}
RANGE = OpenApiParameter(
    "Range",
    str,
    OpenApiParameter.HEADER,
    description="One byte range, e.g. bytes=0-1023, bytes=1024- or bytes=-512 (416 if it starts past the end; "
    "anything else is ignored and the whole file sent). At most BACKUP_DOWNLOADS_MAX downloads stream at once "
    "per web host: past it, 503 downloads_busy with Retry-After.",
)


def _page_size(request: Request) -> int:
    raw = request.query_params.get("page_size")
    if raw is None:
        return PAGE_SIZE
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_PAGE_SIZE):
        problem = {"field": "page_size", "code": "invalid", "message": f"1 to {MAX_PAGE_SIZE}."}
        raise ApiError("validation_failed", details=[problem])
    return int(raw)


def _after(request: Request) -> bytes | None:
    raw = request.query_params.get("after_b64")
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as error:
        problem = {"field": "after_b64", "code": "invalid", "message": "Use the page's next link."}
        raise ApiError("validation_failed", details=[problem]) from error


class SnapshotFilesApi(APIView):
    @extend_schema(
        parameters=PREFIX_PARAMETERS,
        responses=inline_serializer(
            "SnapshotFilesPage",
            {"next": serializers.CharField(allow_null=True), "results": FileOutputSerializer(many=True)},
        ),
        operation_id="backup_files_list",
        summary="A snapshot's paths, by path bytes (paginated)",
    )
    def get(self, request: Request, backup_id: int) -> Response:
        backup = backup_get(retailer_id=auth_context(request).retailer_id, backup_id=backup_id)
        prefix = path_from_input(
            text=request.query_params.get("prefix"), b64=request.query_params.get("prefix_b64"), field="prefix"
        )
        limit = _page_size(request)
        entries = snapshot_files(backup=backup, prefix=prefix or b"", after=_after(request), limit=limit)
        next_link = None
        if len(entries) == limit:
            query = request.query_params.copy()
            query["after_b64"] = path_b64(bytes(entries[-1].path))
            next_link = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return Response({"next": next_link, "results": FileOutputSerializer(entries, many=True).data})


def _download(request: Request, backup: Backup, entry: FileEntry) -> StreamingHttpResponse:
    """The stored file, or the one byte range asked for (206); holds a download slot while it streams."""
    wanted = byte_range(request.headers.get("Range"), entry.size)
    first, last = wanted or (0, entry.size - 1)
    slot = download_slot_take()
    chunks = list(entry.chunks)
    slot.content = file_content(retailer_id=backup.retailer_id, chunks=chunks, first=first, last=last)
    response = StreamingHttpResponse(slot, content_type="application/octet-stream", status=206 if wanted else 200)
    response["Content-Length"] = str(last - first + 1)
    if wanted:
        response["Content-Range"] = f"bytes {first}-{last}/{entry.size}"
    response["Accept-Ranges"] = "bytes"
    name = os.path.basename(bytes(entry.path)).decode("utf-8", errors="replace")
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    response["X-Content-SHA256"] = entry.sha256  # of the whole file, also on a range
    return response


class SnapshotFileDownloadApi(APIView):
    @extend_schema(
        parameters=[RANGE],
        responses=DOWNLOAD_RESPONSES,
        operation_id="backup_file_download",
        summary="Download one file as stored (streamed; Range)",
    )
    def get(self, request: Request, backup_id: int, path: str) -> StreamingHttpResponse:
        backup = backup_get(retailer_id=auth_context(request).retailer_id, backup_id=backup_id)
        raw = path_from_input(text=path, b64=None, field="path")
        return _download(request, backup, snapshot_file(backup=backup, path=raw or b""))


class SnapshotFileByBytesApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("path_b64", str, required=True, description="The path's exact bytes, base64."),
            RANGE,
        ],
        responses=DOWNLOAD_RESPONSES,
        operation_id="backup_file_by_bytes_download",
        summary="Download one file named by its exact path bytes (names that are not UTF-8)",
    )
    def get(self, request: Request, backup_id: int) -> StreamingHttpResponse:
        backup = backup_get(retailer_id=auth_context(request).retailer_id, backup_id=backup_id)
        raw = path_from_input(text=None, b64=request.query_params.get("path_b64", ""), field="path")
        if not raw:
            problem = {"field": "path_b64", "code": "required", "message": "Name a file."}
            raise ApiError("validation_failed", details=[problem])
        return _download(request, backup, snapshot_file(backup=backup, path=raw))


class SnapshotExportDownloadApi(APIView):
    @extend_schema(
        parameters=[RANGE], responses=DOWNLOAD_RESPONSES, summary="Download one data export of a snapshot (JSON lines)"
    )
    def get(self, request: Request, backup_id: int, name: str) -> StreamingHttpResponse:
        backup = backup_get(retailer_id=auth_context(request).retailer_id, backup_id=backup_id)
        entry = snapshot_file(backup=backup, path=export_file_name(name), kind=FileEntry.Kind.EXPORT)
        return _download(request, backup, entry)
