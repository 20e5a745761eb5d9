"""The admin lists backups with progress; ``manage.py backups run`` starts one like the button."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from backups.models import Backup, Prune
from backups.tests.pipeline import outbox_drain


def test_command_starts_a_backup_then_finds_it_running(alice, backup_dirs) -> None:
    out = StringIO()

    call_command("backups", "run", str(alice.retailer.id), stdout=out)
    call_command("backups", "run", "Alice", stdout=out)

    backup = Backup.objects.get(retailer=alice.retailer)
    assert out.getvalue().splitlines() == [
        f"backup {backup.pk} of Alice: started",
        f"backup {backup.pk} of Alice: already running",
    ]


def test_command_names_an_unknown_retailer(db) -> None:
    with pytest.raises(CommandError, match="No retailer 'nobody'"):
        call_command("backups", "run", "nobody")


def test_admin_lists_backups_with_progress(alice, backup_dirs, client) -> None:
    call_command("backups", "run", str(alice.retailer.id), stdout=StringIO())
    outbox_drain()
    staff = User.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(staff)

    page = client.get("/admin/backups/backup/")

    assert page.status_code == 200
    assert b"done" in page.content
    assert b"1 / 1" in page.content  # files done / total (the catalog export)


def test_command_prunes_and_waits_for_the_prune_to_end(alice, backup_dirs) -> None:
    call_command("backups", "run", str(alice.retailer.id), stdout=StringIO())
    outbox_drain()
    out = StringIO()

    call_command("backups", "prune", "Alice", stdout=out)
    outbox_drain()

    prune = Prune.objects.get(retailer=alice.retailer)
    assert out.getvalue().splitlines() == [f"prune {prune.pk} of Alice: started"]
    assert prune.state == Prune.State.DONE


def test_admin_action_starts_one_prune_per_retailer(alice, backup_dirs, client) -> None:
    call_command("backups", "run", str(alice.retailer.id), stdout=StringIO())
    outbox_drain()
    call_command("backups", "run", str(alice.retailer.id), stdout=StringIO())
    outbox_drain()
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    ids = [str(pk) for pk in Backup.objects.values_list("id", flat=True)]

    page = client.post("/admin/backups/backup/", {"action": "prune_repositories", "_selected_action": ids}, follow=True)

    prune = Prune.objects.get(retailer=alice.retailer)
    assert page.status_code == 200
    assert f"Retailer {alice.retailer.id}: prune {prune.pk} started." in page.content.decode()
