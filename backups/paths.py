"""Snapshot paths: bytes inside, text and base64 outside, and the rules that keep a restore in its target."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from django.conf import settings

from app.errors import ApiError


def path_text(path: bytes) -> str:
    """For display: invalid UTF-8 becomes U+FFFD (``path_b64`` keeps the exact bytes)."""
    return path.decode("utf-8", errors="replace")


def path_b64(path: bytes) -> str:
    return base64.b64encode(path).decode("ascii")


def source_root(retailer_id: int) -> bytes:
    return os.fsencode(Path(settings.BACKUP_SOURCE_ROOT) / str(retailer_id))


def restore_root(retailer_id: int) -> Path:
    return Path(settings.BACKUP_RESTORE_ROOT) / str(retailer_id)


def relative_path_check(path: bytes, field: str) -> bytes:
    """``path`` if it is relative and stays below its root: a 400 for ``..``, an absolute path or NUL."""
    if b"\x00" in path:
        raise _bad(field, "must not contain NUL.")
    if path.startswith(b"/"):
        raise _bad(field, "must be relative, not absolute.")
    if any(part == b".." for part in path.split(b"/")):
        raise _bad(field, "must not contain '..'.")
    return path.strip(b"/")


def path_from_input(*, text: str | None, b64: str | None, field: str) -> bytes | None:
    """The path a request names, by ``<field>`` (text) or ``<field>_b64`` (exact bytes); None if neither."""
    if b64 is not None:
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as error:
            raise _bad(f"{field}_b64", "is not valid base64.") from error
        return relative_path_check(raw, f"{field}_b64")
    if text is None:
        return None
    return relative_path_check(os.fsencode(text), field)


def _bad(field: str, message: str) -> ApiError:
    return ApiError("validation_failed", details=[{"field": field, "code": "invalid_path", "message": message}])
