"""Commits that do not wait for the WAL flush, for the drains that record one outcome after
another (``synchronous_commit = off`` for this session, while the block runs).

An email drain commits a ``sent`` mark after each accepted message, a webhook drain a slot's
attempts after each slot; a flush per commit (a few ms on this machine's disk) cost more than
the SMTP conversation or the POST it records. Such a commit is visible to every other session
at once and survives the death of our process: a worker killed after it keeps it. Only a crash
of PostgreSQL itself can take back the commits of its last three ``wal_writer_delay`` (0.6 s
by default), and a mark taken back means one more send after the lease, with the same
Message-ID or ``webhook-id``: the at-least-once window the receivers de-duplicate already
(accepted, not yet recorded), a little wider for that one failure. Nothing is lost: the rows
that say what is still to do were committed with a flush by the transactions that made them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from django.db import DatabaseError, connection


@contextmanager
def commits_unflushed() -> Iterator[None]:
    """Within the block, this connection's commits return before their WAL reaches the disk."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with suppress(DatabaseError), connection.cursor() as cursor:  # a broken connection is discarded anyway
            cursor.execute("RESET synchronous_commit")
