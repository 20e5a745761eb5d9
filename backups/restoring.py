"""Restore a snapshot (or a prefix of it) into ``BACKUP_RESTORE_ROOT/<retailer id>/<target>``.

Never writes outside the target: stored paths are checked again (no ``..``, not absolute, no
NUL), every parent directory's real path must stay under the target's (a symlinked parent is
refused), files are written to a temporary name opened with ``O_EXCL | O_NOFOLLOW`` and renamed
over the destination (a symlink there is replaced, not followed). ``existing``: ``skip`` keeps
an existing path, ``overwrite`` replaces it, ``fail`` ends the job naming the first conflict
(a file already equal to the snapshot's, left by an interrupted slice, is not a conflict).
Runs of zeros are not written (seek), so a sparse file stays sparse.
"""

from __future__ import annotations

import hashlib
import heapq
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from django.db.models import Q

from app.errors import ApiError
from backups.content import file_content
from backups.directories import snapshot_directories
from backups.jobs import SLICE_SECONDS, SliceResult, job_runner
from backups.models import FileEntry, Job
from backups.paths import path_text, relative_path_check, restore_root


class RestoreConflictError(Exception):
    pass


def prefix_filter(prefix: bytes) -> Q:
    """Entries at ``prefix`` or below it (bytewise: ``prefix/`` ≤ path < ``prefix0``, '0' follows '/')."""
    if not prefix:
        return Q()
    return Q(path=prefix) | Q(path__gte=prefix + b"/", path__lt=prefix + b"0")


def target_dir(job: Job) -> Path:
    return restore_root(job.backup.retailer_id) / job.target if job.target else restore_root(job.backup.retailer_id)


@job_runner(Job.Kind.RESTORE)
def restore_slice(job: Job) -> SliceResult:
    root = target_dir(job)
    root.mkdir(parents=True, exist_ok=True)
    real_root = os.path.realpath(root)
    result = SliceResult(cursor=None if job.cursor is None else bytes(job.cursor))
    deadline = time.monotonic() + SLICE_SECONDS
    for entry in _entries(job, result.cursor):
        if time.monotonic() > deadline:
            return result
        path = bytes(entry.path)
        try:
            written = _restore_one(job, entry, os.fsencode(root), real_root)
        except RestoreConflictError:
            result.error_code = "restore_conflict"
            result.error_message = f"{path_text(path)} exists in the target (existing: fail)."
            return result
        except ApiError:
            written = None  # a stored path that would leave the target: never written
        result.cursor = path
        if written is None:
            result.skipped += 1
        else:
            result.items += 1
            result.bytes += written
    result.finished = True
    return result


def _entries(job: Job, after: bytes | None) -> Iterator[FileEntry]:
    """What a restore writes, by path bytes (a directory before what it holds): the entry rows
    and the directories (``backups.directories``), past ``after``."""
    prefix = bytes(job.prefix)
    entries = FileEntry.objects.filter(prefix_filter(prefix), backup_id=job.backup_id).exclude(
        kind=FileEntry.Kind.EXPORT
    )
    if after is not None:
        entries = entries.filter(path__gt=after)
    rows = entries.exclude(state=FileEntry.State.UNREADABLE).order_by("path").iterator(chunk_size=500)
    directories = snapshot_directories(backup_id=job.backup_id, prefix=prefix, after=after)
    return heapq.merge(rows, directories, key=lambda entry: bytes(entry.path))


def _restore_one(job: Job, entry: FileEntry, root: bytes, real_root: str) -> int | None:
    """Restore one entry; the bytes written, or None when skipped."""
    relative = relative_path_check(bytes(entry.path), "path")
    destination = os.path.join(root, relative)
    parent = os.path.dirname(destination)
    os.makedirs(parent, exist_ok=True)
    real_parent = os.fsdecode(os.path.realpath(parent))
    if real_parent != real_root and not real_parent.startswith(real_root + os.sep):
        return None  # a symlinked parent points outside the target
    if entry.kind == FileEntry.Kind.DIRECTORY:
        if os.path.lexists(destination) and not os.path.isdir(destination):
            return _existing(job, entry, destination, lambda: _replace_dir(destination, entry))
        os.makedirs(destination, exist_ok=True)
        os.chmod(destination, entry.mode | stat.S_IRWXU, follow_symlinks=False)
        return 0
    if os.path.lexists(destination):
        if _already_restored(entry, destination):
            return 0
        return _existing(job, entry, destination, lambda: _write(entry, destination, job.backup.retailer_id))
    return _write(entry, destination, job.backup.retailer_id)


def _existing(job: Job, entry: FileEntry, destination: bytes, replace: Callable[[], int]) -> int | None:
    if job.existing == Job.Existing.SKIP:
        return None
    if job.existing == Job.Existing.FAIL:
        raise RestoreConflictError(destination)
    return replace()


def _replace_dir(destination: bytes, entry: FileEntry) -> int:
    os.unlink(destination)
    os.makedirs(destination)
    os.chmod(destination, entry.mode | stat.S_IRWXU)
    return 0


def _already_restored(entry: FileEntry, destination: bytes) -> bool:
    if entry.kind == FileEntry.Kind.SYMLINK:
        return os.path.islink(destination) and os.readlink(destination) == bytes(entry.link_target or b"")
    info = os.lstat(destination)
    if not stat.S_ISREG(info.st_mode) or info.st_size != entry.size:
        return False
    digest = hashlib.sha256()
    with open(destination, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == entry.sha256


def _write(entry: FileEntry, destination: bytes, retailer_id: int) -> int:
    temporary = os.path.join(os.path.dirname(destination), f".sf-restore-{uuid.uuid4().hex}".encode())
    if entry.kind == FileEntry.Kind.SYMLINK:
        os.symlink(bytes(entry.link_target or b""), temporary)
        os.replace(temporary, destination)
        return 0
    written = 0
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            for data in file_content(retailer_id=retailer_id, chunks=list(entry.chunks)):
                _write_keeping_holes(handle, data)
                written += len(data)
            handle.truncate(written)
        os.chmod(temporary, entry.mode)
        os.utime(temporary, ns=(entry.mtime_ns, entry.mtime_ns))
        os.replace(temporary, destination)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    return written


HOLE_BLOCK = 64 * 1024


def _write_keeping_holes(handle: BinaryIO, data: bytes) -> None:
    """Write ``data``, seeking over 64 KiB blocks of zeros: a sparse file stays sparse."""
    for start in range(0, len(data), HOLE_BLOCK):
        block = data[start : start + HOLE_BLOCK]
        if block.count(0) == len(block):
            handle.seek(len(block), os.SEEK_CUR)
        else:
            handle.write(block)
