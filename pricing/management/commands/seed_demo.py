"""``manage.py seed_demo``: a demo retailer with a catalog, one rule of each kind, and fresh keys.

Idempotent: products are upserted to the same values, rules and the policy are made
once, snapshots are computed before the command ends. Secret keys are shown only
once, so each run rotates the demo retailers' keys and prints (and writes) the
new ones as ``[{"retailer", "publishable_key", "secret_key", "origin", "skus"}]``.
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from app.tenancy.models import ApiKey, Retailer
from app.tenancy.services import key_rotate, origin_add, retailer_create
from pricing.models import RepricingShard, Rule
from pricing.services import policy_update, products_bulk_upsert, repricing_shard_run, rule_create
from pricing.services.signals import competitor_price_set

ACTOR = "seed_demo"
ORIGINS = ["http://127.0.0.1:8000", "http://localhost:8000", "http://127.0.0.1:8001"]
BATCH = 5_000
EXPERIMENT_SKUS = 100
COMPETITOR_EVERY = 10


def demo_sku(index: int) -> str:
    return f"DEMO-{index:05d}"


def demo_products(count: int, seed: int) -> list[dict[str, Any]]:
    """The same catalog on every run: prices from a seeded generator."""
    rng = random.Random(seed)
    rows = []
    for index in range(1, count + 1):
        base = Decimal(rng.randrange(500, 20_000)) / 100
        rows.append(
            {
                "sku": demo_sku(index),
                "name": f"Demo product {index}",
                "currency": "USD",
                "base_price": str(base),
                "cost": str((base * Decimal("0.55")).quantize(Decimal("0.01"))),
                "list_price": str((base * Decimal("1.30")).quantize(Decimal("0.01"))),
                "inventory": rng.choice([0, 2, 4, 50, 120, 300, 700, 1500]),
                "active": True,
            }
        )
    return rows


DEMO_RULES: list[tuple[str, dict[str, Any]]] = [
    (
        "demand",
        {
            "name": "Demand",
            "position": 10,
            "params": {"sensitivity": "0.5", "min_multiplier": "0.8", "max_multiplier": "1.3"},
        },
    ),
    (
        "inventory",
        {
            "name": "Stock level",
            "position": 20,
            "params": {
                "scarce_at_or_below": 5,
                "scarcity_raise_percent": "5",
                "overstock_at_or_above": 1000,
                "overstock_cut_percent": "10",
            },
        },
    ),
    (
        "competitor",
        {
            "name": "Beat competitors",
            "position": 30,
            "params": {"mode": "undercut", "undercut_percent": "1", "max_decrease_percent": "8"},
        },
    ),
    (
        "schedule",
        {
            "name": "Evening deals",
            "position": 40,
            "params": {
                "windows": [
                    {
                        "days": ["mon", "tue", "wed", "thu", "fri"],
                        "start": "19:00",
                        "end": "22:00",
                        "adjust_percent": "-5",
                    }
                ]
            },
        },
    ),
]


class Command(BaseCommand):
    help = "Create (or refresh) demo retailers with products, rules and prices; print fresh demo keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--retailers", type=int, default=1)
        parser.add_argument("--products", type=int, default=1000)
        parser.add_argument("--keys-file", default=str(settings.VAR_DIR / "demo_keys.json"))
        parser.add_argument("--rate-limit", type=int, default=None, help="Requests per minute per key.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["retailers"] < 1 or options["products"] < 1:
            raise CommandError("--retailers and --products must be at least 1.")
        demos = []
        for number in range(1, options["retailers"] + 1):
            name = "Demo Retailer" if number == 1 else f"Demo Retailer {number}"
            demos.append(self._seed(name, number, options["products"], options["rate_limit"]))
        path = Path(options["keys_file"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(demos, option=orjson.OPT_INDENT_2))
        for demo in demos:
            skus = ",".join(demo["skus"][:3])
            self.stdout.write(
                f"{demo['retailer']}: publishable {demo['publishable_key']}  secret {demo['secret_key']}\n"
                f"  try: curl '{demo['origin']}/v1/prices?skus={skus}&key={demo['publishable_key']}'"
            )
        self.stdout.write(f"demo keys written to {path}")

    def _seed(self, name: str, number: int, products: int, rate_limit: int | None) -> dict[str, Any]:
        retailer, publishable, secret = self._retailer(name)
        if rate_limit is not None:
            Retailer.objects.filter(pk=retailer.pk).update(rate_limit_per_minute=rate_limit)
        rows = demo_products(products, seed=number)
        if not Rule.objects.filter(retailer=retailer).exists():
            self._rules(retailer, rows)  # before the products: the catalog is then priced once
        for start in range(0, len(rows), BATCH):
            products_bulk_upsert(retailer_id=retailer.id, rows=rows[start : start + BATCH], actor=ACTOR)
        self._run_pending_shards(retailer)
        return {
            "retailer": retailer.name,
            "retailer_id": retailer.id,
            "publishable_key": publishable,
            "secret_key": secret,
            "origin": ORIGINS[0],
            "origins": ORIGINS,
            "skus": [row["sku"] for row in rows],
        }

    def _retailer(self, name: str) -> tuple[Retailer, str, str]:
        with transaction.atomic():
            retailer = Retailer.objects.filter(name=name).first()
            if retailer is None:
                retailer, publishable, secret = retailer_create(name=name, origins=ORIGINS, actor=ACTOR)
                return retailer, publishable.raw, secret.raw
            for origin in ORIGINS:
                origin_add(retailer=retailer, origin=origin, actor=ACTOR)
            fresh_pk = key_rotate(retailer=retailer, kind=ApiKey.Kind.PUBLISHABLE, actor=ACTOR)
            fresh_sk = key_rotate(retailer=retailer, kind=ApiKey.Kind.SECRET, actor=ACTOR)
            return retailer, fresh_pk.raw, fresh_sk.raw

    def _rules(self, retailer: Retailer, rows: list[dict[str, Any]]) -> None:
        policy_update(
            retailer_id=retailer.id,
            data={
                "min_margin_percent": "10",
                "max_daily_change_percent": "25",
                "rounding_step": "1",
                "rounding_ending": "0.99",
            },
            actor=ACTOR,
        )
        for kind, values in DEMO_RULES:
            rule_create(retailer_id=retailer.id, kind=kind, values=values, actor=ACTOR)
        experiment = {
            "name": "Price test",
            "position": 50,
            "skus": [row["sku"] for row in rows[:EXPERIMENT_SKUS]],
            "params": {
                "key": f"demo-{retailer.id}",
                "variants": [
                    {"name": "A", "weight": 50, "adjust_percent": "0"},
                    {"name": "B", "weight": 50, "adjust_percent": "-4"},
                ],
            },
        }
        rule_create(retailer_id=retailer.id, kind="experiment", values=experiment, actor=ACTOR)
        for row in rows[::COMPETITOR_EVERY]:
            rival = (Decimal(row["base_price"]) * Decimal("0.97")).quantize(Decimal("0.01"))
            competitor_price_set(
                retailer_id=retailer.id,
                sku=row["sku"],
                competitor="rival.example",
                price=str(rival),
                currency="USD",
                actor=ACTOR,
            )

    def _run_pending_shards(self, retailer: Retailer) -> None:
        """Price the catalog now, so the demo answers at once even before workers start."""
        pending = RepricingShard.objects.filter(job__retailer=retailer, status=RepricingShard.Status.PENDING)
        for shard_id in pending.order_by("id").values_list("id", flat=True):
            repricing_shard_run(shard_id=shard_id)
