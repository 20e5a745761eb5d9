"""Write ``storefabric.min.js`` from ``storefabric.js`` (the insert's whole build step)."""

from __future__ import annotations

import gzip
from typing import Any

from django.core.management.base import BaseCommand

from analytics.jsmin import MINIFIED, SOURCE, build


class Command(BaseCommand):
    help = "Minify the JavaScript insert into analytics/static/storefabric/storefabric.min.js and print its size."

    def handle(self, *args: Any, **options: Any) -> None:
        minified = build(SOURCE.read_text())
        MINIFIED.write_text(minified)
        data = minified.encode()
        self.stdout.write(
            f"{MINIFIED.name}: {len(data)} bytes minified, {len(gzip.compress(data, 9, mtime=0))} bytes gzipped"
        )
