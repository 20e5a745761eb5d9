"""The repository: a Django storage holding encrypted packs and manifests.

Layout under the storage's root (``BACKUP_REPOSITORY_ROOT`` for the default
``FileSystemStorage``; an S3-compatible storage from django-storages is the scale path)::

    packs/<retailer id>/<uuid>.pack         sealed(zstd chunk || zstd chunk || ...)
    manifests/<retailer id>/<backup id>.jsonl.zst.enc

A pack holds up to ``PACK_TARGET_BYTES`` of compressed chunks and is sealed whole (one AES-GCM
message per pack, associated data = its name), so a million small files make ~1 object per
16 MiB, not a million. Each chunk is one zstd frame: compressed, or, when a sample of it does not
compress (already compressed or encrypted data, as restic and kopia detect it), a frame of raw
blocks, which costs a copy instead of a compression (~1.4 GB/s on random data here) and reads back
through the same ``decompress``, so readers, verify and prune see one format. Reading one chunk
opens its pack; the last few opened packs are kept (``_pack_cache``) since a file's chunks are
usually neighbours.
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
# A chunk is compressed only if its first 16 KiB compress to less than 95 % (the sample costs
# ~12 us; the whole 1 MiB chunk of random data ~0.7 ms to compress, ~0.1 ms to copy raw).
COMPRESS_SAMPLE_BYTES = 16 * 1024
COMPRESS_SAMPLE_RATIO = 0.95
# A zstd frame (RFC 8878) of raw blocks: magic, a descriptor saying "single segment, 8-byte
# content size", the size, then blocks of at most 128 KiB, each with a 3-byte header.
_RAW_FRAME_MAGIC = b"\x28\xb5\x2f\xfd\xe0"
_RAW_BLOCK_BYTES = 128 * 1024
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


def _raw_frame_append(buffer: bytearray, data: bytes | memoryview) -> None:
    """Append ``data`` to ``buffer`` as a zstd frame of raw (uncompressed) blocks."""
    view = memoryview(data)
    buffer += _RAW_FRAME_MAGIC + len(view).to_bytes(8, "little")
    if not view:
        buffer += b"\x01\x00\x00"  # one empty last block
    for start in range(0, len(view), _RAW_BLOCK_BYTES):
        block = view[start : start + _RAW_BLOCK_BYTES]
        last = start + _RAW_BLOCK_BYTES >= len(view)
        buffer += (len(block) << 3 | last).to_bytes(3, "little")  # block type 0: raw
        buffer += block


@dataclass
class PackWriter:
    """Collects compressed chunks for one pack; :meth:`write` stores it sealed. One thread's."""

    retailer_id: int
    buffer: bytearray = field(default_factory=bytearray)
    chunks: dict[str, PackedChunk] = field(default_factory=dict)
    compressor: zstandard.ZstdCompressor = field(default_factory=lambda: zstandard.ZstdCompressor(level=ZSTD_LEVEL))

    def add(self, chunk: str, data: bytes | memoryview) -> int:
        """Add a chunk (once per id), compressed if it compresses; returns the bytes added (0 for a repeat)."""
        if chunk in self.chunks:
            return 0
        offset = len(self.buffer)
        sample = memoryview(data)[:COMPRESS_SAMPLE_BYTES]
        compressed = self.compressor.compress(sample)
        if len(compressed) >= COMPRESS_SAMPLE_RATIO * len(sample):
            _raw_frame_append(self.buffer, data)
        else:
            self.buffer += compressed if len(sample) == len(data) else self.compressor.compress(data)
        self.chunks[chunk] = PackedChunk(chunk, offset, len(self.buffer) - offset, len(data))
        return len(self.buffer) - offset

    def add_compressed(self, chunk: str, compressed: bytes, size: int) -> None:
        """Add a chunk already compressed (a prune moving it out of a pack it rewrites)."""
        self.chunks[chunk] = PackedChunk(chunk, len(self.buffer), len(compressed), size)
        self.buffer += compressed

    @property
    def full(self) -> bool:
        return len(self.buffer) >= PACK_TARGET_BYTES

    def write(self) -> tuple[str, int]:
        """Store the pack, once (its plaintext is let go as soon as it is sealed: 16 MiB less at the
        peak); returns (name, stored size). Raises ``OSError`` (``ENOSPC``) from the storage."""
        name = f"{uuid.uuid4().hex}.pack"
        path = pack_path(self.retailer_id, name)
        sealed = seal(self.buffer, associated=path.encode())  # no copy of the plaintext
        self.buffer = bytearray()
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
