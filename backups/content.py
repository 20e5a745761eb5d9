"""Reading a stored file back: its chunks, in order, from the retailer's packs."""

from __future__ import annotations

from collections.abc import Iterator

from backups.models import Chunk
from backups.repository import chunk_read


def file_content(*, retailer_id: int, chunks: list[str], first: int = 0, last: int | None = None) -> Iterator[bytes]:
    """The file's bytes ``first`` to ``last`` (inclusive; default: all) chunk by chunk, each chunk
    checked against its BLAKE3 id; chunks wholly outside the range are not read. Streamed:
    memory holds one chunk and the few packs of ``repository._pack_cache``."""
    index = {
        row.chunk_id: (row.pack.name, row.offset, row.length, row.size)
        for row in Chunk.objects.filter(retailer_id=retailer_id, chunk_id__in=set(chunks)).select_related("pack")
    }
    start = 0  # of the current chunk, in the file
    for cid in chunks:
        if last is not None and start > last:
            break
        name, offset, length, size = index[cid]
        end = start + size  # exclusive
        if end > first and (last is None or start <= last):
            data = chunk_read(retailer_id=retailer_id, pack_name=name, offset=offset, length=length, expected_id=cid)
            yield data[max(first - start, 0) : size if last is None else min(last + 1 - start, size)]
        start = end
