"""What changed between two snapshots of one retailer: paths added, removed and changed.

One query, a full outer join of the two backups' entries on (kind, path) (their entry rows
answered from the ``backups_entry_unique_path`` index, their directories unnested from the
walk's per-slice rows); a path is *changed* when its size, SHA-256, mode or link
target differs (mtime alone is not a change: the content is the same). Each list is capped at
``DIFF_MAX_PATHS`` with the true counts beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from app.errors import ApiError
from backups.directories import DIRECTORIES_SQL
from backups.models import Backup

DIFF_MAX_PATHS = 1000

# A backup's paths: its entry rows and its directories (backups.directories).
_PATHS_SQL = f"""
SELECT true AS found, kind, path, size, sha256, mode, link_target FROM backups_fileentry
WHERE backup_id = %s AND kind <> 'export'
UNION ALL
SELECT true, 'dir', path, 0, '', mode, NULL FROM ({DIRECTORIES_SQL}) AS d WHERE d.backup_id = %s
"""  # noqa: S608 - constant SQL fragments
_DIFF_SQL = f"""
SELECT a.path, b.path
FROM ({_PATHS_SQL}) a
FULL OUTER JOIN ({_PATHS_SQL}) b
  ON a.kind = b.kind AND a.path = b.path
WHERE a.found IS NULL OR b.found IS NULL
   OR a.size <> b.size OR a.sha256 <> b.sha256 OR a.mode <> b.mode
   OR a.link_target IS DISTINCT FROM b.link_target
ORDER BY COALESCE(b.path, a.path)
"""  # noqa: S608 - constant SQL fragments


@dataclass
class SnapshotDiff:
    added: list[bytes] = field(default_factory=list)
    removed: list[bytes] = field(default_factory=list)
    changed: list[bytes] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"added": 0, "removed": 0, "changed": 0})


def snapshot_diff(*, backup: Backup, other: Backup) -> SnapshotDiff:
    """Paths of ``backup`` that ``other`` lacks (added), the reverse (removed), and both hold
    with other content (changed). Both must be done: 409 ``backup_not_done`` otherwise."""
    for one in (backup, other):
        if one.state != Backup.State.DONE:
            raise ApiError("backup_not_done", f"Backup {one.pk} is {one.state}; only done backups can be compared.")
    diff = SnapshotDiff()
    with connection.cursor() as cursor:
        cursor.execute(_DIFF_SQL, [other.pk, other.pk, backup.pk, backup.pk])
        for old, new in cursor:
            name = "added" if old is None else "removed" if new is None else "changed"
            diff.counts[name] += 1
            paths: list[bytes] = getattr(diff, name)
            if len(paths) < DIFF_MAX_PATHS:
                paths.append(bytes(new if new is not None else old))
    return diff
