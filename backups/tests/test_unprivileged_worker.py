"""A worker run as an unprivileged user (``setpriv``, as production should run it) meets files it
may not read: a root-owned file of mode 000 and a directory of mode 000. Each is reported on its
own entry (and in the manifest) and the backup finishes with everything else.

The tests run as root, who reads anything, so the worker drops to ``nobody`` before Python starts;
it can write only where the test gives it the right to (the repository, restore and download-slot
directories, a temporary directory), as a deployment would. The source tree stays root's,
world-readable except for the two entries.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backups.manifest import manifest_lines
from backups.models import Backup, FileEntry
from backups.tests.conftest import backup_dirs_under, backup_env, source_of, write
from backups.tests.test_workers import poll

NOBODY = pwd.getpwnam("nobody")
SETPRIV = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
READABLE = {"readable/a.txt": b"a" * 100, "readable/deep/b.bin": os.urandom(300_000), "top.txt": b""}


@pytest.fixture
def unprivileged_dirs(settings: Any) -> Iterator[dict[str, Path]]:
    """:func:`backup_dirs` outside pytest's private (0700) temporary root, which ``nobody`` cannot
    enter; the directories the worker writes to are ``nobody``'s."""
    base = Path(tempfile.mkdtemp(prefix="sf-backups-unprivileged-"))
    base.chmod(0o755)
    try:
        for dirs in backup_dirs_under(settings, base):
            dirs["tmp"] = base / "tmp"
            dirs["tmp"].mkdir()
            for name in ("repository", "restore", "download-slots", "tmp"):
                os.chown(dirs[name], NOBODY.pw_uid, NOBODY.pw_gid)
            yield dirs
    finally:
        shutil.rmtree(base)


def unprivileged_command() -> list[str]:
    """What runs the worker as ``nobody``. Where the interpreter's install sits under a directory
    ``nobody`` cannot enter (here pyenv's, under a 0700 ``/root``), the worker gets a mount
    namespace of its own in which that directory is an empty tmpfs showing only the install, at
    its own path; nothing outside the worker's process changes."""
    install = Path(sys.base_prefix).resolve()
    closed = next((parent for parent in reversed(install.parents) if not parent.stat().st_mode & 0o001), None)
    if closed is None:
        return SETPRIV
    script = (
        'mount --bind "$1" /mnt && mount -t tmpfs -o mode=0755 tmpfs "$2" && mkdir -p "$1" '
        '&& mount --bind /mnt "$1" && shift 2 && exec "$@"'
    )
    namespace = ["unshare", "--mount", "--propagation=private", "sh", "-ec", script, "sh"]
    return [*namespace, str(install), str(closed), *SETPRIV]


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@pytest.mark.timeout(120)
def test_files_an_unprivileged_worker_cannot_read_are_reported_and_the_rest_is_backed_up(
    alice, unprivileged_dirs, celery_worker, outbox_relay
) -> None:
    root = source_of(unprivileged_dirs, alice.retailer.id)
    for relative, content in READABLE.items():
        write(root, relative, content)
    secret = write(root, "secret.key", b"root only")
    write(root, "locked/inside.txt", b"behind a closed door")
    secret.chmod(0o000)
    (root / "locked").chmod(0o000)
    env = backup_env(unprivileged_dirs, TMPDIR=str(unprivileged_dirs["tmp"]))
    worker = celery_worker(["backups"], concurrency=1, extra_env=env, command_prefix=unprivileged_command())
    outbox_relay()

    backup = poll(alice, alice.client().post("/v1/backups")["Location"], timeout=90)

    assert {_uid(pid) for pid in [worker.pid, *worker.child_pids()]} == {NOBODY.pw_uid}
    assert secret.read_bytes() == b"root only"  # root reads it: only the worker's privileges stop it
    assert backup["state"] == "done", backup
    assert backup["files_unreadable"] == 2
    entries = {bytes(entry.path): entry for entry in FileEntry.objects.filter(backup_id=backup["id"])}
    assert entries[b"secret.key"].state == FileEntry.State.UNREADABLE
    assert entries[b"secret.key"].error == "PermissionError: Permission denied"
    assert entries[b"locked"].state == FileEntry.State.UNREADABLE
    assert entries[b"locked"].error == "PermissionError: Permission denied"
    assert b"locked/inside.txt" not in entries
    lines = {line["path"]: line for line in manifest_lines(Backup.objects.get(pk=backup["id"]).snapshot.manifest_name)}
    assert lines["secret.key"]["error"] == lines["locked"]["error"] == "PermissionError: Permission denied"
    for relative, content in READABLE.items():
        assert entries[relative.encode()].state == FileEntry.State.DONE
        assert lines[relative]["sha256"] == hashlib.sha256(content).hexdigest()
    download = alice.client().get(f"/v1/backups/{backup['id']}/files/readable/deep/b.bin")
    assert b"".join(download.streaming_content) == READABLE["readable/deep/b.bin"]
