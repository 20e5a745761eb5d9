"""What a finished backup must hold, computed without the pipeline: the manifest lines an
uninterrupted copy of a tree gives, and whether the repository stored any chunk twice."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Sum

from backups.chunking import chunk_id, stream_chunks
from backups.finalizing import manifest_line
from backups.models import Chunk, FileEntry, Pack
from backups.repository import pack_open


def expected_tree_lines(root: Path) -> list[dict[str, Any]]:
    """The manifest lines (directories and regular files, in manifest order: kind, then path
    bytes) of ``root`` copied in one go: each file's SHA-256 and chunk list computed here."""
    entries: list[FileEntry] = []
    base = os.fsencode(root)
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            full = os.path.join(directory, name)
            info = os.lstat(full)
            entry = FileEntry(
                path=os.path.relpath(full, base), mode=stat.S_IMODE(info.st_mode), mtime_ns=info.st_mtime_ns
            )
            if stat.S_ISDIR(info.st_mode):
                entry.kind = FileEntry.Kind.DIRECTORY
            else:
                with open(full, "rb") as handle:
                    content = handle.read()
                entry.kind, entry.size = FileEntry.Kind.FILE, len(content)
                entry.sha256 = hashlib.sha256(content).hexdigest()
                entry.chunks = [chunk_id(data) for data in stream_chunks(io.BytesIO(content))]
            entries.append(entry)
    entries.sort(key=lambda entry: (entry.kind, bytes(entry.path)))
    return [manifest_line(entry) for entry in entries]


def repository_stored_once(retailer_id: int, lines: list[dict[str, Any]]) -> tuple[int, int]:
    """``(chunks wrong, bytes stored twice)`` for a retailer's repository whose only snapshot has
    ``lines``: chunks the manifest names that the index lacks or the index holds that no line
    names, and pack bytes that no index row accounts for (a chunk written into a second pack, by
    a batch copied twice, would be those) plus pack files no ``Pack`` row names."""
    referenced = {chunk for line in lines for chunk in line.get("chunks", [])}
    indexed = set(Chunk.objects.filter(retailer_id=retailer_id).values_list("chunk_id", flat=True))
    packs = list(Pack.objects.filter(retailer_id=retailer_id).values_list("name", flat=True))
    packed = sum(len(pack_open(retailer_id, name)) for name in packs)
    accounted = Chunk.objects.filter(retailer_id=retailer_id).aggregate(total=Sum("length"))["total"] or 0
    on_disk = Path(settings.BACKUP_REPOSITORY_ROOT) / "packs" / str(retailer_id)
    stray = [path for path in on_disk.glob("*.pack") if path.name not in set(packs)]
    return len(referenced ^ indexed), packed - accounted + sum(path.stat().st_size for path in stray)
