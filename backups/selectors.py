"""Backup reads: always scoped by retailer, so another retailer's backup is a 404, never a 403."""

from __future__ import annotations

import heapq
import itertools

from django.db.models import QuerySet

from app.errors import ApiError
from backups.directories import snapshot_directories
from backups.models import Backup, FileEntry, Job, Prune
from backups.restoring import prefix_filter


def backup_get(*, retailer_id: int, backup_id: int) -> Backup:
    backup = Backup.objects.filter(retailer_id=retailer_id, pk=backup_id).first()
    if backup is None:
        raise ApiError("not_found", f"No backup {backup_id}.")
    return backup


def backup_list(*, retailer_id: int) -> QuerySet[Backup]:
    return Backup.objects.filter(retailer_id=retailer_id)


def job_get(*, retailer_id: int, job_id: int, kind: str) -> Job:
    job = Job.objects.filter(backup__retailer_id=retailer_id, pk=job_id, kind=kind).select_related("backup").first()
    if job is None:
        raise ApiError("not_found", f"No {kind} job {job_id}.")
    return job


def prune_get(*, retailer_id: int, prune_id: int) -> Prune:
    prune = Prune.objects.filter(retailer_id=retailer_id, pk=prune_id).first()
    if prune is None:
        raise ApiError("not_found", f"No prune {prune_id}.")
    return prune


def snapshot_files(*, backup: Backup, prefix: bytes, after: bytes | None, limit: int) -> list[FileEntry]:
    """Up to ``limit`` entries of a backup at or below ``prefix``, by path bytes, after ``after``
    (directories included: ``backups.directories``)."""
    entries = FileEntry.objects.filter(prefix_filter(prefix), backup=backup).exclude(kind=FileEntry.Kind.EXPORT)
    if after is not None:
        entries = entries.filter(path__gt=after)
    directories = snapshot_directories(backup_id=backup.pk, prefix=prefix, after=after, limit=limit)
    merged = heapq.merge(entries.order_by("path")[:limit], directories, key=lambda entry: bytes(entry.path))
    return list(itertools.islice(merged, limit))


def snapshot_file(*, backup: Backup, path: bytes, kind: str = FileEntry.Kind.FILE) -> FileEntry:
    """A stored file of a done backup; 404 ``not_found`` for a path not in the snapshot."""
    if backup.state != Backup.State.DONE:
        raise ApiError("backup_not_done", f"Backup {backup.pk} is {backup.state}.")
    entry = FileEntry.objects.filter(backup=backup, kind=kind, path=path, state=FileEntry.State.DONE).first()
    if entry is None:
        raise ApiError("not_found", "No such file in this backup.")
    return entry
