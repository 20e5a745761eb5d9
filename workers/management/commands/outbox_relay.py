"""``manage.py outbox_relay``: publish committed outbox rows to the broker (see workers/relay.py).

Runs until SIGTERM/SIGINT, finishing the current batch first. Any number of
copies may run against PostgreSQL; run one with SQLite (embedded mode).
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from workers.broker_config import broker_config_exit
from workers.relay import Relay, relay_batch


class Command(BaseCommand):
    help = "Publish outbox rows to the broker (loop); --once publishes what is due and exits."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="publish every due row, then exit")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--idle", type=float, default=None, help="seconds to sleep when nothing is due")

    def handle(self, *args: Any, **options: Any) -> None:
        broker_config_exit("relay")
        if options["once"]:
            total = 0
            while count := relay_batch(batch_size=options["batch_size"]):
                total += count
            self.stdout.write(f"published {total} rows")
            return
        relay = Relay(batch_size=options["batch_size"], idle_seconds=options["idle"])

        def stop(signum: int, frame: FrameType | None) -> None:
            relay.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        relay.run()
