"""The manifest's lines as PostgreSQL builds them equal those built in Python from the entries."""

from __future__ import annotations

import orjson

from backups.finalizing import manifest_line, snapshot_entries, snapshot_lines
from backups.manifest import manifest_lines
from backups.models import Backup, FileEntry
from backups.tests.conftest import source_of, write
from backups.tests.test_round_trip import backup_run, tricky_tree


def test_sql_built_lines_equal_the_entries_lines_for_every_kind(alice, backup_dirs) -> None:
    tricky_tree(source_of(backup_dirs, alice.retailer.id))  # directories, symlinks, non-UTF-8 names
    backup = backup_run(alice.retailer.id)
    FileEntry.objects.create(
        backup=backup, kind=FileEntry.Kind.FILE, path=b"gone/\xff \"quoted\"\n.txt", state=FileEntry.State.UNREADABLE,
        error='PermissionError: "denied"\t\\ \u00e9\n',
    )  # fmt: skip

    built = [orjson.loads(line) for line in snapshot_lines(backup.pk)]
    stored = list(manifest_lines(Backup.objects.get(pk=backup.pk).snapshot.manifest_name))

    assert built == [manifest_line(entry) for entry in snapshot_entries(backup.pk)]
    assert {line["kind"] for line in built} == {"dir", "export", "file", "symlink"}
    assert [line for line in built if line.get("error")] == [manifest_line(FileEntry.objects.get(state="unreadable"))]
    assert stored == [line for line in built if not line.get("error")]  # written before the row was added


def test_sql_built_lines_keep_each_path_whatever_its_text_needs(alice, backup_dirs) -> None:
    root = source_of(backup_dirs, alice.retailer.id)
    names = [b"plain name.txt", b"back\\slash", "caf\u00e9".encode(), b'quo"te', b"tab\tnew\nline", b"ctl\x01\x7f"]
    for name in names:
        write(root, b"d/" + name, name)
    backup = backup_run(alice.retailer.id)

    built = [orjson.loads(line) for line in snapshot_lines(backup.pk)]

    assert built == [manifest_line(entry) for entry in snapshot_entries(backup.pk)]
    assert sorted(line["path"] for line in built if line["kind"] == "file") == sorted(f"d/{n.decode()}" for n in names)
