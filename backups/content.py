"""Reading a stored file back: its chunks, in order, from the retailer's packs."""

from __future__ import annotations

from collections.abc import Iterator

from backups.models import Chunk
from backups.repository import chunk_read


def file_content(*, retailer_id: int, chunks: list[str]) -> Iterator[bytes]:
    """The file's bytes chunk by chunk (each checked against its BLAKE3 id), streamed: memory
    holds one chunk and the few packs of ``repository._pack_cache``."""
    index = {
        row.chunk_id: (row.pack.name, row.offset, row.length)
        for row in Chunk.objects.filter(retailer_id=retailer_id, chunk_id__in=set(chunks)).select_related("pack")
    }
    for cid in chunks:
        name, offset, length = index[cid]
        yield chunk_read(retailer_id=retailer_id, pack_name=name, offset=offset, length=length, expected_id=cid)
