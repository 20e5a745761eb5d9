"""The walk of a retailer's source tree, in time-boxed slices with a cursor in PostgreSQL.

A slice pops directories off the cursor's stack, reads each whole with ``os.scandir``
(``DirEntry.stat(follow_symlinks=False)`` gives size, mtime, ctime and inode from one
``lstat``, and none for most entries of the directory listing itself), writes what it found
as :class:`~backups.models.FileEntry` work rows (the directories it read as one
:class:`~backups.models.SliceDirectories` row), pushes subdirectories, and stops after
``BACKUP_SCAN_SLICE_SECONDS`` or ``SLICE_MAX_ENTRIES``. Rows, counters, the new stack and the
next slice's outbox row commit in one transaction (so does the reuse of unchanged files: they
are inserted done, with the previous snapshot's SHA-256 and chunks, so they never reach a copy
lane; ``entry_rows.EntryWriter``): a slice killed midway rolls back whole and runs again from
the same stack (at most one slice redone), and a duplicate delivery of a slice already run
finds ``slice_number`` moved on and does nothing. A slice that found files to copy queues copy
lanes for them in the same transaction; the last slice, when no entry is left open (an unchanged
re-run), moves the backup to ``verifying`` and queues finalize itself
(``services.backup_copy_complete``), a hop and ~2 lane runs per slice fewer.

Symlinks are recorded (their target), never followed; sockets, FIFOs and devices are skipped
and counted; a directory that cannot be read is recorded as an unreadable entry.
"""

from __future__ import annotations

import base64
import os
import stat
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backups.entry_rows import EntryWriter
from backups.models import Backup, FileEntry, ScanCursor
from backups.paths import source_root
from backups.services import backup_copy_complete, copy_lanes_enqueue, scan_slice_enqueue

# A slice writes at most this many rows in its transaction (~20 MB of WAL); a directory is
# always read whole, so one directory larger than this makes one larger slice.
SLICE_MAX_ENTRIES = 20_000


@dataclass
class SliceFindings:
    writer: EntryWriter
    entries: int = 0
    files: int = 0
    done: int = 0  # directories and symlinks: nothing to copy
    bytes: int = 0
    special: int = 0
    unreadable: int = 0


def backup_scan_slice(*, backup_id: int, slice_number: int) -> bool:
    """Run slice ``slice_number`` of a backup's walk; True if it ran (False: a duplicate, or the
    backup ended). Idempotent; at most ``BACKUP_SCAN_SLICE_SECONDS`` plus one directory."""
    with transaction.atomic():
        # Locks the backup's row too (FOR UPDATE of the join): a delete waits for the slice's commit
        # and then removes its entries, which have no database foreign key (models.FileEntry).
        cursor = ScanCursor.objects.select_for_update().select_related("backup").get(backup_id=backup_id)
        backup = cursor.backup
        if cursor.done or cursor.slice_number != slice_number or not backup.running:
            return False
        stack = [base64.b64decode(item) for item in cursor.stack]
        with EntryWriter(backup.pk, slice_number, backup.previous_id) as writer:
            findings = _walk(writer, source_root(backup.retailer_id), stack)
        reused, reused_bytes = writer.reused, writer.reused_bytes
        cursor.stack = [base64.b64encode(item).decode() for item in stack]
        cursor.slice_number += 1
        cursor.done = not stack
        cursor.updated_at = timezone.now()
        cursor.save()
        changes: dict[str, Any] = {
            "files_total": F("files_total") + findings.files,
            "files_done": F("files_done") + findings.done + reused,
            "bytes_done": F("bytes_done") + reused_bytes,
            "files_reused": F("files_reused") + reused,
            "bytes_total": F("bytes_total") + findings.bytes,
            "files_special": F("files_special") + findings.special,
            "files_unreadable": F("files_unreadable") + findings.unreadable,
        }
        if backup.state == Backup.State.QUEUED:
            changes.update(state=Backup.State.SCANNING, started_at=timezone.now())
        if cursor.done:
            changes.update(total_final=True, state=Backup.State.COPYING)
        Backup.objects.filter(pk=backup.pk).update(**changes)
        if cursor.done:
            lanes_needed = not backup_copy_complete(backup_id=backup_id)  # none open: finalize queued
        else:
            scan_slice_enqueue(backup_id=backup_id, slice_number=cursor.slice_number)
            lanes_needed = findings.files - findings.done - reused > 0  # files found and left to copy
        if lanes_needed:
            copy_lanes_enqueue(backup_id=backup_id, origin=f"s{slice_number}")
    return True


def _walk(writer: EntryWriter, root: bytes, stack: list[bytes]) -> SliceFindings:
    """Pop and read directories until the slice's time or size is spent; mutates ``stack``."""
    findings = SliceFindings(writer)
    deadline = time.monotonic() + settings.BACKUP_SCAN_SLICE_SECONDS
    while stack and time.monotonic() < deadline and findings.entries < SLICE_MAX_ENTRIES:
        relative = stack.pop()
        base = relative + b"/" if relative else b""  # a concatenation costs a tenth of os.path.join
        try:
            with os.scandir(root + b"/" + relative if relative else root) as listing:
                for entry in listing:
                    _record(base + entry.name, entry, stack, findings)
        except FileNotFoundError:
            if relative:  # removed since it was listed; the root itself may not exist (data export only)
                _unreadable(relative, "removed while the backup ran", findings)
        except OSError as error:
            _unreadable(relative, f"{type(error).__name__}: {error.strerror}", findings)
    return findings


def _record(path: bytes, entry: os.DirEntry[bytes], stack: list[bytes], found: SliceFindings) -> None:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError as error:
        _unreadable(path, f"{type(error).__name__}: {error.strerror}", found)
        return
    mode = info.st_mode
    if stat.S_ISREG(mode):
        found.writer.file(path, info)
        found.bytes += info.st_size
    elif stat.S_ISDIR(mode):
        found.writer.directory(path, info)
        stack.append(path)
        found.done += 1
    elif stat.S_ISLNK(mode):
        try:
            target = os.readlink(entry.path)
        except OSError as error:
            _unreadable(path, f"{type(error).__name__}: {error.strerror}", found)
            return
        found.writer.add(
            FileEntry.Kind.SYMLINK, path, info, size=len(target), link_target=target, state=FileEntry.State.DONE
        )
        found.done += 1
    else:
        found.special += 1
        return
    found.files += 1
    found.entries += 1


def _unreadable(path: bytes, reason: str, found: SliceFindings) -> None:
    found.unreadable += 1
    found.entries += 1
    found.writer.add(FileEntry.Kind.FILE, path, None, state=FileEntry.State.UNREADABLE, error=reason)
