"""A snapshot's directories, read back in path order from the rows the walk wrote per slice.

The walk records the directories each slice read as one :class:`~backups.models.SliceDirectories`
row (``[path hex, mode, mtime_ns]`` each); here they come back as unsaved
:class:`~backups.models.FileEntry` objects of kind ``dir`` (state ``done``), so the manifest,
the file listing, the diff and a restore treat them as they treat the entry rows. Backups taken
before directories left ``FileEntry`` still hold them as rows there, which every reader unions
in too. PostgreSQL unnests and sorts them (a worker's memory stays flat at any directory count);
SQLite (the embedded mode, demo-sized trees) sorts them in Python.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection

from backups.models import FileEntry, SliceDirectories

# One row per directory (backup_id, path, mode, mtime_ns): unnested from the per-slice JSON.
DIRECTORIES_SQL = """
SELECT s.backup_id, decode(d.value->>0, 'hex') AS path, (d.value->>1)::integer AS mode,
    (d.value->>2)::bigint AS mtime_ns
FROM backups_slicedirectories AS s CROSS JOIN LATERAL jsonb_array_elements(s.directories) AS d(value)
"""
_SELECT_SQL = f"SELECT d.path, d.mode, d.mtime_ns FROM ({DIRECTORIES_SQL}) AS d WHERE d.backup_id = %s"  # noqa: S608
# Paths at or below a prefix, as restoring.prefix_filter says (bytewise: prefix/ <= path < prefix0).
_PREFIX_SQL = " AND (d.path = %s OR (d.path >= %s AND d.path < %s))"


def snapshot_directories(
    *, backup_id: int, prefix: bytes = b"", after: bytes | None = None, limit: int | None = None
) -> Iterator[FileEntry]:
    """The backup's directories at or below ``prefix`` and past ``after``, by path bytes, at most
    ``limit``; streamed from a server-side cursor 2,000 rows per fetch."""
    if connection.vendor != "postgresql":
        yield from _directories_in_python(backup_id, prefix, after, limit)
        return
    sql = _SELECT_SQL
    params: list[int | bytes] = [backup_id]
    if prefix:
        sql += _PREFIX_SQL
        params += [prefix, prefix + b"/", prefix + b"0"]
    if after is not None:
        sql += " AND d.path > %s"
        params.append(after)
    sql += " ORDER BY d.path"
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(2000):
            for path, mode, mtime_ns in rows:
                yield _directory(backup_id, bytes(path), mode, mtime_ns)


def _directories_in_python(
    backup_id: int, prefix: bytes, after: bytes | None, limit: int | None
) -> Iterator[FileEntry]:
    found = []
    for records in SliceDirectories.objects.filter(backup_id=backup_id).values_list("directories", flat=True):
        for path_hex, mode, mtime_ns in records:
            path = bytes.fromhex(path_hex)
            below = not prefix or path == prefix or prefix + b"/" <= path < prefix + b"0"
            if below and (after is None or path > after):
                found.append((path, mode, mtime_ns))
    found.sort()
    for path, mode, mtime_ns in found[:limit]:
        yield _directory(backup_id, path, mode, mtime_ns)


def _directory(backup_id: int, path: bytes, mode: int, mtime_ns: int) -> FileEntry:
    return FileEntry(
        backup_id=backup_id, kind=FileEntry.Kind.DIRECTORY, path=path, mode=mode, mtime_ns=mtime_ns,
        state=FileEntry.State.DONE,
    )  # fmt: skip
