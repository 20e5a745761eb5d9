"""The repository: a Django storage holding encrypted packs and manifests.

Layout under the storage's root (``BACKUP_REPOSITORY_ROOT`` for the default
``FileSystemStorage``; an S3-compatible storage from django-storages is the scale path)::

    packs/<retailer id>/<uuid>.pack         sealed(zstd chunk || zstd chunk || ...)
    manifests/<retailer id>/<backup id>.jsonl.zst.enc

A pack holds up to ``PACK_TARGET_BYTES`` of compressed chunks and is sealed whole (one AES-GCM
message per pack, associated data = its name), so a million small files make ~1 object per
16 MiB, not a million. Reading one chunk opens its pack; the last few opened packs are kept
(``_pack_cache``) since a file's chunks are usually neighbours.
"""

from __future__ import annotations

import io
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache

import zstandard
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.utils.module_loading import import_string

from backups.chunking import chunk_id
from backups.crypto import CorruptObjectError, seal, unseal

# 16 MiB: a pack per ~16 files of 1 MiB or ~4,000 files of 4 KiB; small enough that opening
# one to read a chunk costs ~10 ms of decryption.
PACK_TARGET_BYTES = 16 * 1024 * 1024
ZSTD_LEVEL = 3  # ~400 MB/s compress on one core; level 9 gains ~5 % size for 4x the time
PACK_CACHE_SIZE = 4


@cache
def repository_storage() -> Storage:
    storage_class = import_string(settings.BACKUP_STORAGE)
    return storage_class(location=str(settings.BACKUP_REPOSITORY_ROOT))  # type: ignore[no-any-return]


def storage_reset() -> None:
    """Forget the storage (tests that change BACKUP_REPOSITORY_ROOT) and the pack cache."""
    repository_storage.cache_clear()
    _pack_cache.clear()


def pack_path(retailer_id: int, name: str) -> str:
    return f"packs/{retailer_id}/{name}"


@dataclass
class PackedChunk:
    chunk_id: str
    offset: int
    length: int
    size: int


@dataclass
class PackWriter:
    """Collects compressed chunks for one pack; :meth:`write` stores it sealed."""

    retailer_id: int
    buffer: bytearray = field(default_factory=bytearray)
    chunks: dict[str, PackedChunk] = field(default_factory=dict)

    def add(self, chunk: str, data: bytes) -> int:
        """Add a chunk (once per id); returns the compressed bytes added (0 for a repeat)."""
        if chunk in self.chunks:
            return 0
        compressed = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data)
        self.chunks[chunk] = PackedChunk(chunk, len(self.buffer), len(compressed), len(data))
        self.buffer += compressed
        return len(compressed)

    def add_compressed(self, chunk: str, compressed: bytes, size: int) -> None:
        """Add a chunk already compressed (a prune moving it out of a pack it rewrites)."""
        self.chunks[chunk] = PackedChunk(chunk, len(self.buffer), len(compressed), size)
        self.buffer += compressed

    @property
    def full(self) -> bool:
        return len(self.buffer) >= PACK_TARGET_BYTES

    def write(self) -> tuple[str, int]:
        """Store the pack; returns (name, stored size). Raises ``OSError`` (``ENOSPC``) from the storage."""
        name = f"{uuid.uuid4().hex}.pack"
        path = pack_path(self.retailer_id, name)
        sealed = seal(bytes(self.buffer), associated=path.encode())
        saved = repository_storage().save(path, ContentFile(sealed))
        if saved != path:  # a storage that renames would break the name the seal is bound to
            raise RuntimeError(f"the repository storage renamed {path} to {saved}")
        return name, len(sealed)


_pack_cache: OrderedDict[str, bytes] = OrderedDict()


def pack_open(retailer_id: int, name: str) -> bytes:
    """A pack's plaintext; :class:`CorruptObjectError` when it fails authentication."""
    path = pack_path(retailer_id, name)
    if path in _pack_cache:
        _pack_cache.move_to_end(path)
        return _pack_cache[path]
    with repository_storage().open(path, "rb") as handle:
        sealed = handle.read()
    plaintext = unseal(sealed, associated=path.encode())
    _pack_cache[path] = plaintext
    while len(_pack_cache) > PACK_CACHE_SIZE:
        _pack_cache.popitem(last=False)
    return plaintext


def chunk_read(*, retailer_id: int, pack_name: str, offset: int, length: int, expected_id: str) -> bytes:
    """One chunk's raw bytes, checked against its id (:class:`CorruptObjectError` if not)."""
    compressed = pack_open(retailer_id, pack_name)[offset : offset + length]
    try:
        data = zstandard.ZstdDecompressor().decompress(compressed)
    except zstandard.ZstdError as error:
        raise CorruptObjectError(f"chunk {expected_id} does not decompress") from error
    if chunk_id(data) != expected_id:
        raise CorruptObjectError(f"chunk {expected_id} has another hash")
    return data


def object_delete(path: str) -> None:
    """Delete a stored object; one already gone is no error (a retried prune deletes it again)."""
    repository_storage().delete(path)


def objects_older_than(directory: str, seconds: float) -> list[str]:
    """The names of the objects in ``directory`` last written more than ``seconds`` ago."""
    storage = repository_storage()
    if not storage.exists(directory):
        return []
    cutoff = time.time() - seconds
    _, names = storage.listdir(directory)
    return [name for name in names if storage.get_modified_time(f"{directory}/{name}").timestamp() < cutoff]


def object_read(path: str) -> io.BufferedIOBase:
    return repository_storage().open(path, "rb")  # type: ignore[return-value]


def object_save(path: str, content: ContentFile[bytes] | io.IOBase) -> None:  # any django File
    storage = repository_storage()
    if storage.exists(path):
        storage.delete(path)  # a finalize that ran twice writes the same manifest again
    storage.save(path, content)  # type: ignore[arg-type]
