"""Repository storages that stand in for a bad disk: full (`ENOSPC`), broken (`EIO`), failing after N bytes."""

from __future__ import annotations

import errno
import os
from typing import Any

from django.core.files.storage import FileSystemStorage

LIMIT_BYTES = 300_000


class FullDiskStorage(FileSystemStorage):
    def _save(self, name: str, content: Any) -> str:
        used = sum(entry.stat().st_size for entry in _files(self.location))
        if used + content.size > LIMIT_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
        return super()._save(name, content)


def _files(root: str) -> list[os.DirEntry[str]]:
    found = []
    for directory, _, names in os.walk(root):
        with os.scandir(directory) as listing:
            found += [entry for entry in listing if entry.is_file() and entry.name in names]
    return found


class BrokenDiskStorage(FileSystemStorage):
    """A disk that fails every write with ``EIO``: an error no retry fixes (not transient)."""

    def _save(self, name: str, content: Any) -> str:
        raise OSError(errno.EIO, os.strerror(errno.EIO), name)


class FailingDiskStorage(FileSystemStorage):
    """A disk that fails with ``EIO`` once it holds ``limit`` bytes (a test sets it): a copy
    that stops midway through a large file, as a crash would."""

    limit = 0

    def _save(self, name: str, content: Any) -> str:
        used = sum(entry.stat().st_size for entry in _files(self.location))
        if used + content.size > self.limit:
            raise OSError(errno.EIO, os.strerror(errno.EIO), name)
        return super()._save(name, content)
