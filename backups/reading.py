"""Reading source files for a copy lane: opened without following a symlink (and without touching
atime when we own them), stat'ed before and after the read so a change shows.

A file below the chunker's minimum is one chunk (FastCDC cuts none in it): it is read in one call
and hashed (SHA-256 and BLAKE3) from that buffer, no chunker. In a first backup of 10 k files the
lane's thread waited for PostgreSQL ~a quarter of the time (claims, index lookups, finishes), so
``SmallFileReader`` reads a batch's small files ahead in a thread meanwhile (os calls, hashlib
and blake3 release the GIL), at most ``PREFETCH_BYTES`` ahead. It touches no database.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from backups.chunking import MIN_CHUNK, chunk_id

PREFETCH_BYTES = 4 * 1024 * 1024
PREFETCH_FILES = 256


@dataclass
class FileRead:
    """One read of a file: stats before and after, its SHA-256 and chunks; ``data`` is a small
    file's one chunk, still to pack; ``skipped`` the prefix stored before a resume (hashed only)."""

    first: os.stat_result
    last: os.stat_result
    sha256: str
    chunks: list[str]
    size: int
    skipped: int = 0
    data: bytes = field(default=b"", repr=False)


def source_open(path: bytes) -> int | str:
    """A read-only descriptor of ``path``, or why it cannot be opened (reported per file)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        try:  # O_NOATIME needs the file's owner; any other reader opens without it
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return "PermissionError: Permission denied"
    except OSError as error:
        return f"{type(error).__name__}: {error.strerror}"


def not_regular(first: os.stat_result) -> str:
    return "" if stat.S_ISREG(first.st_mode) else "no longer a regular file"


def small_read_from(fd: int, first: os.stat_result) -> FileRead:
    """Read a file smaller than ``MIN_CHUNK`` in one call (one byte more than its size, so one
    that grew shows in the size check)."""
    data = os.read(fd, first.st_size + 1)
    last = os.fstat(fd)
    chunks = [chunk_id(data)] if data else []
    return FileRead(first, last, hashlib.sha256(data).hexdigest(), chunks, len(data), data=data)


def small_read(path: bytes) -> FileRead | str | None:
    """The whole read of a small file, or why it cannot be read, or ``None`` when it is no longer
    small (it grew since the scan: the lane chunks it)."""
    opened = source_open(path)
    if isinstance(opened, str):
        return opened
    try:
        first = os.fstat(opened)
        if not_regular(first):
            return not_regular(first)
        return small_read_from(opened, first) if first.st_size < MIN_CHUNK else None
    finally:
        os.close(opened)


class SmallFileReader:
    """Reads the given small files, in order, in one thread ahead of the lane."""

    def __init__(self, files: list[tuple[int, bytes, int]]) -> None:
        """``files``: (entry id, path, scanned size) in the order the lane takes them."""
        self._todo = deque(files)
        self._ahead: dict[int, tuple[Future[FileRead | str | None], int]] = {}
        self._ahead_bytes = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="small-reader") if files else None
        self._fill()

    def take(self, entry_id: int) -> FileRead | str | None:
        """The read of ``entry_id`` (``None`` if it was not read ahead, or is no longer small)."""
        ahead = self._ahead.pop(entry_id, None)
        if ahead is None:
            return None
        self._ahead_bytes -= ahead[1]
        self._fill()
        return ahead[0].result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _fill(self) -> None:
        while self._todo and self._ahead_bytes < PREFETCH_BYTES and len(self._ahead) < PREFETCH_FILES:
            entry_id, path, size = self._todo.popleft()
            assert self._pool is not None
            self._ahead[entry_id] = (self._pool.submit(small_read, path), size)
            self._ahead_bytes += size
