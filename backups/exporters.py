"""The retailer data export: exporters registered by dotted path in ``settings.BACKUP_EXPORTERS``.

An exporter is ``(*, retailer_id: int) -> Iterator[bytes]`` yielding JSON lines (each ending in
``\\n``), streamed from the database (``QuerySet.iterator``), never built in memory. backups imports
them by dotted path only, as ``HOT_ROUTES`` does: it never imports another app's models.
An exporter must be deterministic (same data → same bytes), so an unchanged catalog dedups to
zero new chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from django.conf import settings
from django.utils.module_loading import import_string

Exporter = Callable[..., Iterator[bytes]]


def exporter_names() -> list[str]:
    return sorted(settings.BACKUP_EXPORTERS)


def exporter_get(name: str) -> Exporter:
    exporter: Exporter = import_string(settings.BACKUP_EXPORTERS[name])
    return exporter


def export_file_name(name: str) -> bytes:
    return f"{name}.jsonl".encode()


def export_name_of(file_name: bytes) -> str:
    return file_name.decode().removesuffix(".jsonl")
