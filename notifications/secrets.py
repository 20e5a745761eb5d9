"""Webhook signing secrets: generated as ``whsec_<base64>``, stored encrypted (Fernet).

The Fernet key is derived from ``WEBHOOK_SECRET_ENCRYPTION_KEY`` (by default
``SECRET_KEY``, which has no default outside embedded mode) with SHA-256 and a label,
so the same setting never serves two purposes with the same bytes. A database dump
alone does not reveal any secret.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from functools import cache

from cryptography.fernet import Fernet
from django.conf import settings

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix, not a secret)
SECRET_BYTES = 24  # Standard Webhooks: between 24 and 64 bytes


@cache
def _fernet(key_material: str) -> Fernet:
    digest = hashlib.sha256(b"storefabric.webhook-secrets.v1:" + key_material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _cipher() -> Fernet:
    return _fernet(settings.WEBHOOK_SECRET_ENCRYPTION_KEY or settings.SECRET_KEY)


def secret_generate() -> str:
    """A new signing secret, ``whsec_`` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_encrypt(secret: str) -> str:
    return _cipher().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str:
    return _cipher().decrypt(token.encode()).decode()


def secret_key_bytes(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: the base64-decoded part after the prefix."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))
