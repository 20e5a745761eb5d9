"""``manage.py deadletters list|show ID|replay ID [ID …]``: inspect and replay dead letters."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.models import DeadLetter
from workers.selectors import deadletter_get, deadletter_list
from workers.services import DeadLetterNotReplayableError, deadletter_replay


class Command(BaseCommand):
    help = "List, show and replay dead letters (messages that will not be retried again)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="most recent first")
        listing.add_argument("--status", choices=[s.value for s in DeadLetter.Status], default=None)
        listing.add_argument("--task", default=None)
        listing.add_argument("--limit", type=int, default=50)
        show = sub.add_parser("show", help="arguments, error and traceback of one")
        show.add_argument("id", type=int)
        replay = sub.add_parser("replay", help="publish again (same idempotency key) through the outbox")
        replay.add_argument("ids", type=int, nargs="+")

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _list(self, options: dict[str, Any]) -> None:
        letters = deadletter_list(status=options["status"], task_name=options["task"])[: options["limit"]]
        self.stdout.write(f"{'id':>6}  {'status':8}  {'failures':>8}  {'last failure':25}  task / key / error")
        for letter in letters:
            self.stdout.write(
                f"{letter.pk:>6}  {letter.status:8}  {letter.failures:>8}  {letter.last_failed_at.isoformat():25}  "
                f"{letter.task_name} {letter.idempotency_key} {letter.exception[:80]}"
            )

    def _show(self, options: dict[str, Any]) -> None:
        letter = deadletter_get(deadletter_id=options["id"])
        if letter is None:
            raise CommandError(f"no dead letter {options['id']}")
        for field in ("id", "task_name", "idempotency_key", "task_id", "queue", "retailer_id", "status"):
            self.stdout.write(f"{field}: {getattr(letter, field)}")
        for field in ("attempts", "failures", "replays", "first_failed_at", "last_failed_at", "last_replayed_at"):
            self.stdout.write(f"{field}: {getattr(letter, field)}")
        self.stdout.write(f"kwargs: {json.dumps(letter.kwargs, indent=2, sort_keys=True)}")
        self.stdout.write(f"exception: {letter.exception}\n{letter.traceback}")

    def _replay(self, options: dict[str, Any]) -> None:
        failed = False
        for deadletter_id in options["ids"]:
            try:
                letter = deadletter_replay(deadletter_id=deadletter_id, actor="manage.py deadletters")
            except DeadLetter.DoesNotExist:
                self.stderr.write(f"{deadletter_id}: no such dead letter")
                failed = True
            except DeadLetterNotReplayableError as error:
                self.stderr.write(f"{deadletter_id}: {error}")
                failed = True
            else:
                self.stdout.write(f"{letter.pk}: queued for replay ({letter.task_name} {letter.idempotency_key})")
        if failed:
            raise CommandError("some dead letters were not replayed")
