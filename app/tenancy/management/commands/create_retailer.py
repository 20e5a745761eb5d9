"""``manage.py create_retailer NAME --origin URL`` → one JSON object with the new keys."""

from __future__ import annotations

from typing import Any

import orjson
from django.core.management.base import BaseCommand, CommandError, CommandParser

from app.errors import ApiError
from app.tenancy.models import Retailer
from app.tenancy.services import retailer_create


class Command(BaseCommand):
    help = "Create a retailer with a publishable and a secret key, printed once as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--origin", action="append", default=[], help="Allowed browser origin (repeatable).")
        parser.add_argument("--timezone", default="UTC")

    def handle(self, *args: Any, **options: Any) -> None:
        if Retailer.objects.filter(name=options["name"]).exists():
            raise CommandError(f"A retailer named {options['name']!r} exists already.")
        try:
            retailer, publishable, secret = retailer_create(
                name=options["name"],
                origins=options["origin"],
                actor="cli",
                timezone_name=options["timezone"],
            )
        except ApiError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            orjson.dumps(
                {
                    "retailer": retailer.name,
                    "retailer_id": retailer.id,
                    "publishable_key": publishable.raw,
                    "secret_key": secret.raw,
                    "origins": sorted(retailer.origins.values_list("origin", flat=True)),
                }
            ).decode()
        )
