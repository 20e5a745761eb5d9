"""Downloads of stored files: one byte range (RFC 9110 ``Range``), and a cap on how many run at once.

**Range.** ``bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` are served as 206 with ``Content-Range``;
a range that starts past the end (or ``-0``) is a 416 with ``Content-Range: bytes */<size>``.
A header that is not one well-formed bytes range (several ranges, another unit, a typo) is
ignored and the whole file is sent, as RFC 9110 §14.2 allows.

**The cap.** A download holds its web thread for as long as the client reads, and the web runs
``WEB_CONCURRENCY`` processes of ``WEB_THREADS`` threads (5 x 1 by default): a cap per process
could not be below one thread, which is all a process has, so it would protect nothing. The cap
is per web host instead, shared by its processes and threads: ``BACKUP_DOWNLOADS_MAX`` (2) slot
files in ``BACKUP_DOWNLOAD_SLOTS_DIR``, each held with ``flock`` while a download streams. The
kernel drops a lock with its process, so a killed web process frees its slot. Past the cap: 503
``downloads_busy`` with ``Retry-After``, and the price API keeps the other processes.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator

from django.conf import settings

from app.errors import ApiError

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
RETRY_AFTER_SECONDS = 2


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte of a single-range ``Range`` header, or None to send
    the whole file; :class:`ApiError` ``range_not_satisfiable`` (416) if it asks for none of it."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":  # a suffix: the last n bytes
        first, last = max(size - int(last_text), 0), size - 1
        if int(last_text) == 0 or size == 0:
            raise _unsatisfiable(size)
        return first, last
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if last_text and int(last_text) < first:
        return None  # an invalid range is ignored (RFC 9110 §14.1.1)
    if first >= size:
        raise _unsatisfiable(size)
    return first, last


def _unsatisfiable(size: int) -> ApiError:
    return ApiError("range_not_satisfiable", headers={"Content-Range": f"bytes */{size}"})


class DownloadSlot:
    """One of the host's download slots, held until :meth:`close` (the response's close, which
    gunicorn calls when the client has read all or gone away). Iterates the wrapped content."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        self.content: Iterator[bytes] = iter(())

    def __iter__(self) -> DownloadSlot:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self.content)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # drops the flock
            self.fd = None

    __del__ = close  # a response dropped without close (never in gunicorn) frees its slot when collected


def download_slot_take() -> DownloadSlot:
    """A free slot, or :class:`ApiError` ``downloads_busy`` (503, ``Retry-After``) when all are held."""
    directory = settings.BACKUP_DOWNLOAD_SLOTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(settings.BACKUP_DOWNLOADS_MAX):
        fd = os.open(directory / f"slot-{index}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return DownloadSlot(fd)
    raise ApiError("downloads_busy", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
