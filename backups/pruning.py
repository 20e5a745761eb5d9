"""Prune: expire backups past retention, then remove the chunks and packs no snapshot needs.

A prune is a :class:`~backups.models.Prune` row run in slices on the ``backups`` queue:

1. **sweep** (one transaction, under the repository lock of ``backups.locks``): if a backup of
   the retailer runs, the prune waits (``waiting``; the backup's end wakes it, in the end's own
   transaction: ``prunes_wake``). Otherwise it deletes the backups past retention (their
   entries go with them), then the index rows of every chunk that no entry of a remaining
   ``done`` backup names. ``backup_start`` takes the same lock, so no backup starts, reuses or
   deduplicates against the index while the sweep decides what is dead: a backup running
   during a prune keeps every chunk it reuses or writes.
2. **repack** (slices of ``SLICE_SECONDS``, by pack id up to the newest pack at the sweep): a
   pack none of whose chunks is indexed any more is deleted; a pack with more than
   ``REPACK_UNUSED_FRACTION`` of dead bytes is rewritten with its live chunks (new pack
   stored, index rows moved to it in one transaction, old pack deleted after the commit).
   Backups may run meanwhile: they only add packs, and a moved chunk stays indexed throughout.
   The last slice deletes pack files and manifests that no row names (a crash between a
   storage write and its commit), once they are ``ORPHAN_MIN_AGE_SECONDS`` old.

Idempotent: each slice checks ``slice_number`` under the row lock and queues the next through
the outbox in the same transaction; a redelivered slice does nothing, a killed one runs again
(a storage delete of a missing object is no error).
"""

from __future__ import annotations

import time

from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Sum
from django.utils import timezone

from backups.locks import repository_lock
from backups.manifest import manifest_path
from backups.models import Backup, Chunk, Pack, Prune
from backups.repository import PackWriter, object_delete, objects_older_than, pack_open, pack_path
from backups.retention import backups_expired
from workers.outbox import outbox_enqueue_task

PRUNE_TASK = "backups.prune_slice"
SLICE_SECONDS = 2.0
# restic's prune rewrites packs with unused data too (--max-unused); a pack of 16 MiB that is
# a quarter dead costs ~30 ms to rewrite, and rewriting at every dead byte would rewrite the
# whole repository after each small deletion.
REPACK_UNUSED_FRACTION = 0.25
# A pack file is stored before its index rows commit (one transaction, well under a second);
# one with no row after an hour was left by a crash.
ORPHAN_MIN_AGE_SECONDS = 3600.0

# Chunk ids named by the entries of the retailer's done backups, anti-joined to the index (a
# hashed anti-join: one pass over the entries, one over the index).
_SWEEP_SQL = """
WITH live AS (
    SELECT DISTINCT jsonb_array_elements_text(e.chunks) AS chunk_id
    FROM backups_fileentry e JOIN backups_backup b ON b.id = e.backup_id
    WHERE b.retailer_id = %s AND b.state = 'done'
)
DELETE FROM backups_chunk c
WHERE c.retailer_id = %s AND NOT EXISTS (SELECT 1 FROM live WHERE live.chunk_id = c.chunk_id)
"""


def prune_slice_enqueue(*, prune_id: int, slice_number: int) -> None:
    outbox_enqueue_task(
        task_name=PRUNE_TASK,
        kwargs={"prune_id": prune_id, "slice_number": slice_number},
        idempotency_key=f"{PRUNE_TASK}:{prune_id}:{slice_number}",
    )


def prune_request(*, retailer_id: int) -> tuple[Prune, bool]:
    """Record a prune and queue its first slice; ``(prune, created)``. A retailer has at most
    one open prune (a partial unique index): a second request returns it."""
    open_prune = Prune.objects.filter(retailer_id=retailer_id, state__in=Prune.OPEN).first()
    if open_prune is not None:
        return open_prune, False
    try:
        with transaction.atomic():
            prune = Prune.objects.create(retailer_id=retailer_id)
            prune_slice_enqueue(prune_id=prune.pk, slice_number=0)
    except IntegrityError:  # a concurrent request won the unique index
        open_prune = Prune.objects.filter(retailer_id=retailer_id, state__in=Prune.OPEN).first()
        if open_prune is None:
            raise
        return open_prune, False
    return prune, True


def prunes_wake(*, retailer_id: int) -> None:
    """Queue the next slice of the retailer's waiting prune. Call inside the transaction that
    ends a backup (after its state change), so the wake commits with the end."""
    for prune in Prune.objects.filter(retailer_id=retailer_id, state=Prune.State.WAITING):
        prune_slice_enqueue(prune_id=prune.pk, slice_number=prune.slice_number)


def prunes_waiting_wake_all() -> int:
    """The beat's safety net: wake waiting prunes of retailers with no running backup."""
    woken = 0
    for prune in Prune.objects.filter(state=Prune.State.WAITING):
        if not Backup.objects.filter(retailer_id=prune.retailer_id, state__in=Backup.RUNNING).exists():
            with transaction.atomic():
                prune_slice_enqueue(prune_id=prune.pk, slice_number=prune.slice_number)
            woken += 1
    return woken


def prune_slice_run(*, prune_id: int, slice_number: int) -> bool:
    """Run one slice of a prune; True if it ran. A duplicate or stale delivery does nothing."""
    prune = Prune.objects.get(pk=prune_id)
    if prune.slice_number != slice_number or prune.state not in Prune.OPEN:
        return False
    if prune.phase == Prune.Phase.SWEEP:
        return _sweep(prune_id, slice_number)
    return _repack(prune_id, slice_number)


def _locked(prune_id: int, slice_number: int) -> Prune | None:
    prune = Prune.objects.select_for_update(of=("self",)).select_related("retailer").get(pk=prune_id)
    return prune if prune.slice_number == slice_number and prune.state in Prune.OPEN else None


def _sweep(prune_id: int, slice_number: int) -> bool:
    manifests: list[str] = []
    with transaction.atomic():
        prune = _locked(prune_id, slice_number)
        if prune is None:
            return False
        repository_lock(retailer_id=prune.retailer_id)
        prune.slice_number += 1
        running = Backup.objects.select_for_update().filter(retailer_id=prune.retailer_id, state__in=Backup.RUNNING)
        if list(running.values_list("id", flat=True)):  # locked: its end waits for this commit
            prune.state = Prune.State.WAITING  # the backup's end queues slice_number (prunes_wake)
            prune.save(update_fields=["state", "slice_number"])
            return True
        expired = backups_expired(retailer_id=prune.retailer_id, time_zone=prune.retailer.time_zone)
        manifests = [manifest_path(prune.retailer_id, backup.pk) for backup in expired]
        Backup.objects.filter(pk__in=[backup.pk for backup in expired]).delete()
        with connection.cursor() as cursor:
            cursor.execute(_SWEEP_SQL, [prune.retailer_id, prune.retailer_id])
            prune.chunks_deleted = cursor.rowcount
        prune.backups_expired = len(expired)
        prune.packs_until = Pack.objects.filter(retailer_id=prune.retailer_id).aggregate(top=Max("id"))["top"] or 0
        prune.state, prune.phase, prune.swept_at = Prune.State.RUNNING, Prune.Phase.REPACK, timezone.now()
        prune.save()
        prune_slice_enqueue(prune_id=prune_id, slice_number=prune.slice_number)
    for name in manifests:
        object_delete(name)
    return True


def _repack(prune_id: int, slice_number: int) -> bool:
    prune = Prune.objects.get(pk=prune_id)
    deadline = time.monotonic() + SLICE_SECONDS
    cursor, deleted, rewritten, freed = prune.pack_cursor, 0, 0, 0
    packs = Pack.objects.filter(retailer_id=prune.retailer_id, id__gt=cursor, id__lte=prune.packs_until).order_by("id")
    finished = True
    for pack in packs.iterator(chunk_size=200):
        if time.monotonic() > deadline:
            finished = False
            break
        outcome, saved = _pack_prune(pack)
        deleted += outcome == "deleted"
        rewritten += outcome == "rewritten"
        freed += saved
        cursor = pack.pk
    orphans = _orphans_delete(prune.retailer_id) if finished else 0
    with transaction.atomic():
        locked = _locked(prune_id, slice_number)
        if locked is None:
            return False
        locked.pack_cursor = cursor
        locked.packs_deleted += deleted
        locked.packs_rewritten += rewritten
        locked.bytes_freed += freed
        locked.orphans_deleted += orphans
        locked.slice_number += 1
        if finished:
            locked.state, locked.finished_at = Prune.State.DONE, timezone.now()
        else:
            prune_slice_enqueue(prune_id=prune_id, slice_number=locked.slice_number)
        locked.save()
    return True


def _pack_prune(pack: Pack) -> tuple[str, int]:
    """Delete or rewrite one pack if it holds dead chunks; returns (what was done, bytes freed)."""
    live = Chunk.objects.filter(pack=pack).aggregate(bytes=Sum("length"))["bytes"] or 0
    if live == 0:
        Pack.objects.filter(pk=pack.pk).delete()  # no chunk row names it, and none can again
        object_delete(pack_path(pack.retailer_id, pack.name))
        return "deleted", pack.size
    if live >= (1 - REPACK_UNUSED_FRACTION) * pack.size:
        return "kept", 0
    plaintext = pack_open(pack.retailer_id, pack.name)
    writer = PackWriter(retailer_id=pack.retailer_id)
    chunks = list(Chunk.objects.filter(pack=pack))
    for chunk in chunks:
        writer.add_compressed(chunk.chunk_id, plaintext[chunk.offset : chunk.offset + chunk.length], chunk.size)
    name, size = writer.write()
    with transaction.atomic():
        new = Pack.objects.create(retailer_id=pack.retailer_id, name=name, size=size)
        for chunk in chunks:
            chunk.pack, chunk.offset = new, writer.chunks[chunk.chunk_id].offset
        Chunk.objects.bulk_update(chunks, ["pack", "offset"], batch_size=1000)
        Pack.objects.filter(pk=pack.pk).delete()
    object_delete(pack_path(pack.retailer_id, pack.name))
    return "rewritten", pack.size - size


def _orphans_delete(retailer_id: int) -> int:
    """Delete pack files and manifests no row names, older than ``ORPHAN_MIN_AGE_SECONDS``."""
    deleted = 0
    directory = f"packs/{retailer_id}"
    stale = objects_older_than(directory, ORPHAN_MIN_AGE_SECONDS)
    known = set(Pack.objects.filter(retailer_id=retailer_id, name__in=stale).values_list("name", flat=True))
    for name in stale:
        if name not in known:
            object_delete(f"{directory}/{name}")
            deleted += 1
    directory = f"manifests/{retailer_id}"
    stale = objects_older_than(directory, ORPHAN_MIN_AGE_SECONDS)
    ids = {name: name.split(".", 1)[0] for name in stale}
    present = {str(pk) for pk in Backup.objects.filter(retailer_id=retailer_id).values_list("id", flat=True)}
    for name, backup_id in ids.items():
        if backup_id not in present:
            object_delete(f"{directory}/{name}")
            deleted += 1
    return deleted
