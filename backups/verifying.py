"""Verify: re-read every pack of the backup's retailer and check every chunk against its id.

A slice opens packs (authenticating each whole: AES-GCM) and decompresses and hashes each of
their chunks, for ``SLICE_SECONDS``; the cursor is the last pack id checked. A corrupted pack
(it fails authentication) makes all its chunks bad; a chunk that fails its hash is bad alone.
When the last pack is checked, the backup's files are matched against the bad chunks, and each
problem names the chunk and the files it breaks; the job then fails with ``corrupt_chunks``.
"""

from __future__ import annotations

import time
from typing import Any

from backups.crypto import CorruptObjectError
from backups.jobs import SLICE_SECONDS, SliceResult, job_runner
from backups.models import Chunk, FileEntry, Job, Pack
from backups.paths import path_b64, path_text
from backups.repository import chunk_read, pack_open

MAX_FILES_PER_PROBLEM = 20


@job_runner(Job.Kind.VERIFY)
def verify_slice(job: Job) -> SliceResult:
    retailer_id = job.backup.retailer_id
    after = int(bytes(job.cursor).decode()) if job.cursor else 0
    result = SliceResult(cursor=bytes(job.cursor) if job.cursor else None)
    deadline = time.monotonic() + SLICE_SECONDS
    packs = Pack.objects.filter(retailer_id=retailer_id, id__gt=after).order_by("id")
    for pack in packs.iterator(chunk_size=100):
        if time.monotonic() > deadline:
            return result
        result.problems += _pack_check(retailer_id, pack)
        result.items += 1
        result.bytes += pack.size
        result.cursor = str(pack.pk).encode()
    found = [*job.problems, *result.problems]
    bad = {problem["chunk"] for problem in found}
    if bad:
        result.problems, result.problems_replace = _with_files(job, found, bad), True
        result.error_code = "corrupt_chunks"
        result.error_message = f"{len(bad)} stored chunk(s) are corrupted or missing; see problems."
    result.finished = True
    return result


def _pack_check(retailer_id: int, pack: Pack) -> list[dict[str, Any]]:
    chunks = list(Chunk.objects.filter(pack=pack).values_list("chunk_id", "offset", "length"))
    try:
        pack_open(retailer_id, pack.name)
    except (CorruptObjectError, OSError) as error:
        if isinstance(error, FileNotFoundError) and not Pack.objects.filter(pk=pack.pk).exists():
            return []  # a prune deleted or rewrote it meanwhile: its live chunks are in a newer pack, checked later
        return [{"chunk": cid, "pack": pack.name, "error": str(error)} for cid, _, _ in chunks]
    problems = []
    for cid, offset, length in chunks:
        try:
            chunk_read(retailer_id=retailer_id, pack_name=pack.name, offset=offset, length=length, expected_id=cid)
        except CorruptObjectError as error:
            problems.append({"chunk": cid, "pack": pack.name, "error": str(error)})
    return problems


def _with_files(job: Job, problems: list[dict[str, Any]], bad: set[str]) -> list[dict[str, Any]]:
    """Add to each problem the backup's files (up to 20) that hold its chunk."""
    files: dict[str, list[dict[str, str]]] = {chunk: [] for chunk in bad}
    entries = FileEntry.objects.filter(backup_id=job.backup_id, state=FileEntry.State.DONE).exclude(chunks=[])
    for path, chunks in entries.values_list("path", "chunks").iterator(chunk_size=2000):
        for chunk in set(chunks) & bad:
            if len(files[chunk]) < MAX_FILES_PER_PROBLEM:
                files[chunk].append({"path": path_text(bytes(path)), "path_b64": path_b64(bytes(path))})
    return [{**problem, "files": files[problem["chunk"]]} for problem in problems]
