"""Backups fixtures: a source tree, repository and restore root per test, under tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backups.repository import storage_reset


@pytest.fixture
def backup_dirs(settings: Any, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Point BACKUP_SOURCE_ROOT, BACKUP_REPOSITORY_ROOT, BACKUP_RESTORE_ROOT and BACKUP_DOWNLOAD_SLOTS_DIR
    at fresh directories;
    ``env`` holds them for worker processes."""
    yield from backup_dirs_under(settings, tmp_path)


def backup_dirs_under(settings: Any, base: Path) -> Iterator[dict[str, Path]]:
    """The body of :func:`backup_dirs`, under any ``base`` directory."""
    dirs = {name: base / name for name in ("source", "repository", "restore", "download-slots")}
    for path in dirs.values():
        path.mkdir()
    settings.BACKUP_SOURCE_ROOT = dirs["source"]
    settings.BACKUP_REPOSITORY_ROOT = dirs["repository"]
    settings.BACKUP_RESTORE_ROOT = dirs["restore"]
    settings.BACKUP_DOWNLOAD_SLOTS_DIR = dirs["download-slots"]
    storage_reset()
    yield dirs
    storage_reset()


def backup_env(dirs: dict[str, Path], **extra: str) -> dict[str, str]:
    return {
        "BACKUP_SOURCE_ROOT": str(dirs["source"]),
        "BACKUP_REPOSITORY_ROOT": str(dirs["repository"]),
        "BACKUP_RESTORE_ROOT": str(dirs["restore"]),
        "BACKUP_DOWNLOAD_SLOTS_DIR": str(dirs["download-slots"]),
        **extra,
    }


def source_of(dirs: dict[str, Path], retailer_id: int) -> Path:
    root = dirs["source"] / str(retailer_id)
    root.mkdir(exist_ok=True)
    return root


def write(root: Path, relative: str | bytes, content: bytes = b"") -> Path:
    path = Path(os.fsdecode(os.path.join(os.fsencode(root), os.fsencode(relative))))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path
