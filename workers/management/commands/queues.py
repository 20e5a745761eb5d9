"""``manage.py queues [peek NAME | purge NAME --yes]``: the operator's view of the broker."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.broker import message_sent_at, queue_peek, queue_purge, queue_stats, workers_online
from workers.journal import journal_forget_queue
from workers.routing import ALL_QUEUES


class Command(BaseCommand):
    help = "Queue depths, oldest message ages and workers online; peek at or purge one queue."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action")
        peek = sub.add_parser("peek", help="show the next message of a queue without taking it")
        peek.add_argument("name", choices=ALL_QUEUES)
        purge = sub.add_parser("purge", help="delete every waiting message of a queue")
        purge.add_argument("name", choices=ALL_QUEUES)
        purge.add_argument("--yes", action="store_true", help="really delete them")
        parser.add_argument("--ping-timeout", type=float, default=1.0)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options.get("action")
        if action == "peek":
            self._peek(options["name"])
        elif action == "purge":
            self._purge(options["name"], confirmed=options["yes"])
        else:
            self._overview(options["ping_timeout"])

    def _overview(self, ping_timeout: float) -> None:
        self.stdout.write(f"{'queue':12} {'depth':>8} {'oldest age (s)':>15}")
        for stat in queue_stats():
            age = "-" if stat.oldest_age_seconds is None else f"{stat.oldest_age_seconds:.1f}"
            self.stdout.write(f"{stat.name:12} {stat.depth:>8} {age:>15}")
        online = workers_online(timeout=ping_timeout)
        self.stdout.write(f"workers online: {len(online)}")
        for name in online:
            self.stdout.write(f"  {name}")

    def _peek(self, name: str) -> None:
        message = queue_peek(name)
        if message is None:
            self.stdout.write(f"{name}: empty")
            return
        headers = message.get("headers", {})
        sent_at = message_sent_at(message)
        summary = {
            "task": headers.get("task"),
            "id": headers.get("id"),
            "retries": headers.get("retries"),
            "kwargsrepr": headers.get("kwargsrepr"),
            "age_seconds": round(time.time() - sent_at, 3) if sent_at else None,
            "outbox_id": headers.get("outbox_id"),
            "request_id": headers.get("request_id"),
            "redelivered": message.get("properties", {}).get("delivery_info", {}).get("redelivered"),
        }
        self.stdout.write(json.dumps(summary, indent=2, default=str))

    def _purge(self, name: str, *, confirmed: bool) -> None:
        if not confirmed:
            raise CommandError(f"this deletes every waiting message of {name!r}; add --yes to do it")
        removed = queue_purge(name)
        forgotten = journal_forget_queue(name)  # or the journal sweep would bring them back
        self.stdout.write(f"{name}: purged {removed} messages ({forgotten} journaled)")
