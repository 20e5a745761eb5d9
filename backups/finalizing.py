"""The last step of a backup: write its manifest, record the snapshot, announce completion.

Runs once per backup in state ``verifying`` (queued by ``services.backup_copy_complete``).
Redelivered, it writes the same manifest again (same name, same lines: entries ordered by
kind and path bytes, so an interrupted and resumed backup of a tree gets the manifest an
uninterrupted one would) and the state check makes the rest a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import transaction
from django.utils import timezone

from backups.events import backup_ended_announce
from backups.manifest import manifest_path, manifest_write
from backups.models import Backup, FileEntry, Snapshot
from backups.paths import path_b64, path_text
from backups.pruning import prunes_wake


def manifest_line(entry: FileEntry) -> dict[str, Any]:
    path = bytes(entry.path)
    line: dict[str, Any] = {
        "path": path_text(path),
        "path_b64": path_b64(path),
        "kind": entry.kind,
        "size": entry.size,
        "mode": entry.mode,
        "mtime_ns": entry.mtime_ns,
    }
    if entry.kind in (FileEntry.Kind.FILE, FileEntry.Kind.EXPORT):
        line.update(sha256=entry.sha256, chunks=entry.chunks)
    if entry.link_target is not None:
        line["link_target_b64"] = path_b64(bytes(entry.link_target))
    if entry.state == FileEntry.State.UNREADABLE or entry.error:
        line["error"] = entry.error
    return line


def snapshot_entries(backup_id: int) -> Iterator[FileEntry]:
    """The snapshot's entries in manifest order, streamed 2,000 rows per fetch."""
    return FileEntry.objects.filter(backup_id=backup_id).order_by("kind", "path").iterator(chunk_size=2000)


def backup_finalize(*, backup_id: int) -> bool:
    """Write the manifest and end the backup as done; True if this call ended it. Idempotent."""
    backup = Backup.objects.get(pk=backup_id)
    if backup.state != Backup.State.VERIFYING:
        return False
    name = manifest_path(backup.retailer_id, backup_id)
    digest, count = manifest_write(name, (manifest_line(entry) for entry in snapshot_entries(backup_id)))
    with transaction.atomic():
        backup = Backup.objects.select_for_update().get(pk=backup_id)
        if backup.state != Backup.State.VERIFYING:
            return False
        Snapshot.objects.update_or_create(
            backup=backup,
            defaults={"manifest_name": name, "manifest_sha256": digest, "files": count, "bytes": backup.bytes_done},
        )
        backup.state = Backup.State.DONE
        backup.finished_at = timezone.now()
        backup.save(update_fields=["state", "finished_at"])
        backup_ended_announce(backup)
        prunes_wake(retailer_id=backup.retailer_id)
    return True
