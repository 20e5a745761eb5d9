"""Authenticated encryption of repository objects: AES-256-GCM with ``BACKUP_ENCRYPTION_KEY``.

A sealed object is ``nonce (12 random bytes) || ciphertext || tag (16 bytes)``. The associated
data binds it to its name (a pack's name, a manifest frame's name and index), so an object
copied or moved to another name fails to open. Random 96-bit nonces: NIST's limit of 2**32
messages per key is ~4 billion packs of 16 MiB, far beyond one key's life here.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings

NONCE_BYTES = 12
TAG_BYTES = 16


class CorruptObjectError(ValueError):
    """A repository object failed authentication: corrupted, truncated, or sealed under another key."""


def _cipher() -> AESGCM:
    return AESGCM(bytes.fromhex(settings.BACKUP_ENCRYPTION_KEY))


def seal(plaintext: bytes | bytearray | memoryview, *, associated: bytes) -> bytearray:
    """Encrypted straight behind its nonce (``encrypt_into``: 2.5-3.8 ms per 16 MiB against 6-10 ms
    for ``nonce + encrypt()``, which allocates and copies the ciphertext twice)."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = bytearray(NONCE_BYTES + len(plaintext) + TAG_BYTES)
    sealed[:NONCE_BYTES] = nonce
    _cipher().encrypt_into(nonce, plaintext, associated, memoryview(sealed)[NONCE_BYTES:])
    return sealed


def unseal(sealed: bytes, *, associated: bytes) -> bytes:
    """The plaintext, or :class:`CorruptObjectError` if a single bit of ``sealed`` changed."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise CorruptObjectError("truncated")
    try:
        return _cipher().decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    except InvalidTag as error:
        raise CorruptObjectError("authentication failed") from error
