"""The last step of a backup: write its manifest, record the snapshot, announce completion.

Runs once per backup in state ``verifying`` (queued by ``services.backup_copy_complete``).
Redelivered, it writes the same manifest again (same name, same lines: entries ordered by
kind and path bytes, so an interrupted and resumed backup of a tree gets the manifest an
uninterrupted one would) and the state check makes the rest a no-op.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from backups.directories import DIRECTORIES_SQL, snapshot_directories
from backups.events import backup_ended_announce
from backups.manifest import manifest_path, manifest_write
from backups.models import Backup, FileEntry, Snapshot
from backups.paths import path_b64, path_text
from backups.pruning import prunes_wake


def manifest_line(entry: FileEntry) -> dict[str, Any]:
    """An entry's manifest line (what :data:`_MANIFEST_LINES_SQL` builds on PostgreSQL)."""
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
    """The snapshot's entries in manifest order (kind, then path bytes), directories included,
    streamed 2,000 rows per fetch."""
    rows = FileEntry.objects.filter(backup_id=backup_id).order_by("kind", "path").iterator(chunk_size=2000)
    return heapq.merge(snapshot_directories(backup_id=backup_id), rows, key=_manifest_order)


def _manifest_order(entry: FileEntry) -> tuple[str, bytes]:
    return entry.kind, bytes(entry.path)


# Each manifest line but its path's text (invalid UTF-8 becomes U+FFFD, which SQL cannot do) is
# built by PostgreSQL as text: a dict and an orjson.dumps per line in Python, after decoding the
# chunk list, were ~70 % of an unchanged re-run's finalize (~150 of ~215 ms per 16,745 entries,
# load 8); json_build_object + json_strip_nulls cost the server ~2x what concatenation does.
# Only the error needs JSON escaping: kinds, hex digests, numbers, base64 and jsonb text are JSON.
_LINE_TAIL_SQL = """
    '"path_b64":"' || translate(encode(path, 'base64'), E'\\n', '') || '","kind":"' || kind || '","size":' || size
    || ',"mode":' || mode || ',"mtime_ns":' || mtime_ns
    || CASE WHEN kind IN ('file', 'export') THEN ',"sha256":"' || sha256 || '","chunks":' || chunks::text ELSE '' END
    || CASE WHEN link_target IS NULL THEN ''
        ELSE ',"link_target_b64":"' || translate(encode(link_target, 'base64'), E'\\n', '') || '"' END
    || CASE WHEN state = 'unreadable' OR error <> '' THEN ',"error":' || to_json(error)::text ELSE '' END || '}'
"""
# Manifest order is kind, then path bytes, and 'dir' sorts first: the directories (from the walk's
# per-slice rows, and from entry rows where a backup wrote them before those existed) by path, then
# the other entries in the order of the (backup, kind, path) index, so no sort of the whole snapshot.
_DIRECTORY_LINES_SQL = f"""
SELECT path, {_LINE_TAIL_SQL} FROM (
    SELECT path, 'dir' AS kind, 0 AS size, mode, mtime_ns, '' AS sha256, '[]'::jsonb AS chunks,
        NULL::bytea AS link_target, 'done' AS state, '' AS error
    FROM ({DIRECTORIES_SQL}) AS d WHERE d.backup_id = %s
    UNION ALL
    SELECT path, kind, size, mode, mtime_ns, sha256, chunks, link_target, state, error
    FROM backups_fileentry WHERE backup_id = %s AND kind = 'dir'
) AS e ORDER BY path
"""  # noqa: S608 - constant SQL fragments
_ENTRY_LINES_SQL = f"""
SELECT path, {_LINE_TAIL_SQL} FROM backups_fileentry WHERE backup_id = %s AND kind <> 'dir' ORDER BY kind, path
"""  # noqa: S608 - constant SQL fragments


def snapshot_lines(backup_id: int) -> Iterator[bytes]:
    """The manifest's JSON lines (each ending in a newline), streamed from server-side cursors
    2,000 rows per fetch: the lines of :func:`manifest_line` of :func:`snapshot_entries`, which
    SQLite takes."""
    if connection.vendor != "postgresql":
        for entry in snapshot_entries(backup_id):
            yield orjson.dumps(manifest_line(entry), option=orjson.OPT_APPEND_NEWLINE)
        return
    for sql, params in ((_DIRECTORY_LINES_SQL, [backup_id, backup_id]), (_ENTRY_LINES_SQL, [backup_id])):
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(2000):
                for path, tail in rows:
                    yield b'{"path":' + orjson.dumps(path_text(bytes(path))) + b"," + tail.encode() + b"\n"


def backup_finalize(*, backup_id: int) -> bool:
    """Write the manifest and end the backup as done; True if this call ended it. Idempotent."""
    backup = Backup.objects.get(pk=backup_id)
    if backup.state != Backup.State.VERIFYING:
        return False
    name = manifest_path(backup.retailer_id, backup_id)
    digest, count = manifest_write(name, snapshot_lines(backup_id))
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
