"""``manage.py backups run RETAILER``: start a backup (what the button does) and print it.

``RETAILER`` is a retailer id or name. Answers at once, as the API does; ``--wait`` polls until
the backup ends (the work runs on the ``backups`` workers, never in this process).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.tenancy.models import Retailer
from backups.models import Backup
from backups.services import backup_start


class Command(BaseCommand):
    help = "Start a backup of a retailer: backups run RETAILER [--wait]"

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="start a backup (or show the one running)")
        run.add_argument("retailer", help="retailer id or name")
        run.add_argument("--wait", action="store_true", help="wait until it ends")

    def handle(self, *args: Any, **options: Any) -> None:
        retailer = _retailer(options["retailer"])
        backup, created = backup_start(retailer_id=retailer.pk)
        self.stdout.write(f"backup {backup.pk} of {retailer.name}: {'started' if created else 'already running'}")
        if not options["wait"]:
            return
        while backup.running:
            time.sleep(1)
            backup.refresh_from_db()
            self.stdout.write(f"  {backup.state}: {backup.files_done}/{backup.files_total} files")
        self.stdout.write(f"backup {backup.pk}: {backup.state} {backup.error_code}".rstrip())
        if backup.state != Backup.State.DONE:
            raise CommandError(backup.error_message or backup.state)


def _retailer(value: str) -> Retailer:
    found = Retailer.objects.filter(pk=int(value)) if value.isdigit() else Retailer.objects.filter(name=value)
    retailer = found.first()
    if retailer is None:
        raise CommandError(f"No retailer {value!r} (give its id or name).")
    return retailer
