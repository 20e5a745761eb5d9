"""The repository lock: what makes a prune's sweep and the start of a backup take turns.

A backup deduplicates against the chunk index (a chunk found there is not stored again) and
reuses its previous snapshot's chunk lists; a sweep that dropped an index row in between
would leave the backup naming a chunk that is gone. So the sweep runs only while no backup
of the retailer runs, and checks that under this lock, which ``backup_start`` takes too: a
click during a sweep waits for the sweep's transaction (about a second per 100 k entries),
and a sweep during a backup waits for the backup (``pruning``).
"""

from __future__ import annotations

from django.db import connection

# pg_advisory_xact_lock(int4, int4): this class names "a backups repository", the second key the retailer.
REPOSITORY_LOCK_CLASS = 0x62_6B_75_70  # "bkup"


def repository_lock(*, retailer_id: int) -> None:
    """Hold the retailer's repository lock until the current transaction ends. SQLite (the
    embedded mode) serializes every write transaction already, so it needs no lock of its own."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [REPOSITORY_LOCK_CLASS, retailer_id])
