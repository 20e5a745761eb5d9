"""``manage.py backups run|prune RETAILER``: start a backup (what the button does), or a prune.

``RETAILER`` is a retailer id or name. Answers at once, as the API does; ``--wait`` polls until
the backup or prune ends (the work runs on the ``backups`` workers, never in this process).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.tenancy.models import Retailer
from backups.models import Backup, Prune
from backups.pruning import prune_request
from backups.services import backup_start


class Command(BaseCommand):
    help = "Start a backup or a prune of a retailer: backups run|prune RETAILER [--wait]"

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="start a backup (or show the one running)")
        run.add_argument("retailer", help="retailer id or name")
        run.add_argument("--wait", action="store_true", help="wait until it ends")
        prune = sub.add_parser("prune", help="expire backups past retention and remove unreferenced data")
        prune.add_argument("retailer", help="retailer id or name")
        prune.add_argument("--wait", action="store_true", help="wait until it ends")

    def handle(self, *args: Any, **options: Any) -> None:
        retailer = _retailer(options["retailer"])
        if options["action"] == "prune":
            self._prune(retailer, wait=options["wait"])
            return
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

    def _prune(self, retailer: Retailer, *, wait: bool) -> None:
        prune, created = prune_request(retailer_id=retailer.pk)
        self.stdout.write(f"prune {prune.pk} of {retailer.name}: {'started' if created else 'already open'}")
        while wait and prune.state in Prune.OPEN:
            time.sleep(1)
            prune.refresh_from_db()
            self.stdout.write(f"  {prune.state} ({prune.phase})")
        if wait:
            self.stdout.write(
                f"prune {prune.pk}: {prune.state}, {prune.backups_expired} backups expired, "
                f"{prune.chunks_deleted} chunks and {prune.packs_deleted} packs deleted, "
                f"{prune.packs_rewritten} packs rewritten, {prune.bytes_freed} bytes freed"
            )


def _retailer(value: str) -> Retailer:
    found = Retailer.objects.filter(pk=int(value)) if value.isdigit() else Retailer.objects.filter(name=value)
    retailer = found.first()
    if retailer is None:
        raise CommandError(f"No retailer {value!r} (give its id or name).")
    return retailer
