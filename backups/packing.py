"""Packing a copy batch's new chunks: deduplicated against the index in bulk, sealed and stored
by a background thread while the lane reads on.

New chunks wait in ``pending`` until ~``LOOKUP_BATCH_BYTES`` have come (or the pack would be
full); then one query asks the retailer's index which of them it holds (the dedup; a query per
chunk was 25 % of a first backup of 10 k files) and the rest go into the pack being filled. A full
pack is handed to the writer thread (AES-GCM and the storage's write release the GIL: they were
30 % of the lane's time, now spent beside the reading, hashing and chunking of the next files);
one pack at most is in flight, so memory holds the pack being filled, the one being written and
the pending chunks (~40 MiB). A pack's index rows commit, in the lane's thread, only once its
write has returned: the index never names a pack that is not stored. Then ``on_stored`` runs with
the progress of the file being copied when that pack was closed, whose chunks so far are all
indexed by then (a large file resumes there after a crash).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from django.db import transaction

from backups import repository
from backups.models import Chunk, Pack
from backups.repository import PackWriter

# New chunks whose presence in the index is asked in one query: ~4 files of 1 MiB or ~500 of 8 KiB.
LOOKUP_BATCH_BYTES = 4 * 1024 * 1024


@dataclass
class FileProgress:
    """How far the file being copied is: its bytes so far (a chunk boundary) and their chunks."""

    entry_id: int
    offset: int
    chunks: list[str]


@dataclass
class _Writing:
    future: Future[tuple[str, int]]
    writer: PackWriter
    progress: FileProgress | None


class Packer:
    """One copy batch's packs. Not thread-safe: the lane's thread calls it; it owns the writer thread."""

    def __init__(self, *, retailer_id: int, on_stored: Callable[[FileProgress | None], None]) -> None:
        self.retailer_id, self.on_stored = retailer_id, on_stored
        self.writer = PackWriter(retailer_id=retailer_id)
        self.pending: dict[str, bytes] = {}
        self.pending_bytes = 0
        self.new_chunks = self.new_bytes = 0
        self.progress: FileProgress | None = None
        self._writing: _Writing | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pack-writer")

    def add(self, cid: str, data: bytes) -> None:
        if self._writing and self._writing.future.done():
            self._settle()  # index a stored pack at once: a crash leaves as little unindexed as before
        if cid in self.pending or cid in self.writer.chunks or (self._writing and cid in self._writing.writer.chunks):
            return
        self.pending[cid] = data
        self.pending_bytes += len(data)
        if self.pending_bytes >= min(LOOKUP_BATCH_BYTES, repository.PACK_TARGET_BYTES - len(self.writer.buffer)):
            self._flush()

    def finish(self) -> None:
        """Store and index everything added; returns once every pack of the batch is indexed."""
        self._flush()
        if self.writer.chunks:
            self._close_pack()
        self._settle()

    def close(self) -> None:
        """Wait for the pack in flight (its errors were or will never be wanted) and stop the thread."""
        self._thread.shutdown(wait=True)

    def _flush(self) -> None:
        if not self.pending:
            return
        stored = Chunk.objects.filter(retailer_id=self.retailer_id, chunk_id__in=list(self.pending))
        for cid in stored.values_list("chunk_id", flat=True):
            del self.pending[cid]
        for cid, data in self.pending.items():
            self.writer.add(cid, data)
        self.pending.clear()
        self.pending_bytes = 0
        if self.writer.full:
            self._close_pack()

    def _close_pack(self) -> None:
        self._settle()
        progress = self.progress and FileProgress(
            self.progress.entry_id, self.progress.offset, list(self.progress.chunks)
        )
        self._writing = _Writing(self._thread.submit(self.writer.write), self.writer, progress)
        self.writer = PackWriter(retailer_id=self.retailer_id)

    def _settle(self) -> None:
        """Index the pack in flight once stored (``OSError`` from the storage, e.g. ``ENOSPC``, is raised here)."""
        writing, self._writing = self._writing, None
        if writing is None:
            return
        name, size = writing.future.result()
        chunks, compressed = _pack_index(writing.writer, name, size)
        self.new_chunks += chunks
        self.new_bytes += compressed
        self.on_stored(writing.progress)


def _pack_index(writer: PackWriter, name: str, size: int) -> tuple[int, int]:
    """Index a stored pack's chunks; returns (chunks indexed now, their compressed bytes). A chunk
    another lane indexed meanwhile keeps its row (``ignore_conflicts``): stored once in the index."""
    with transaction.atomic():
        pack = Pack.objects.create(retailer_id=writer.retailer_id, name=name, size=size)
        rows = [
            Chunk(
                retailer_id=writer.retailer_id,
                chunk_id=c.chunk_id,
                pack=pack,
                offset=c.offset,
                length=c.length,
                size=c.size,
            )
            for c in writer.chunks.values()
        ]
        created = Chunk.objects.bulk_create(rows, ignore_conflicts=True)
    return len(created), sum(c.length for c in writer.chunks.values())
