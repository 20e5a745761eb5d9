"""Fixtures of the workers tests: the effect table, fault-test worker settings."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import connection

from analytics.tests.probes import counted_by_sku
from app.tenancy.models import Retailer
from workers import broker, publish
from workers.tests import fault_tasks


@dataclass
class Effects:
    """What the test tasks did: effects applied per key, runs per key, redelivered runs."""

    def applied(self) -> dict[str, int]:
        """Product views counted per key by the production events insert (the effect of the test tasks)."""
        return counted_by_sku(fault_tasks.effects_retailer_id())

    def unguarded(self) -> dict[str, int]:
        """The bare counter rows of ``fault_tasks.unguarded_apply``."""
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT key, applied FROM {fault_tasks.EFFECT_TABLE}")  # noqa: S608
            return dict(cursor.fetchall())

    def executions(self) -> dict[str, int]:
        return fault_tasks.counts(fault_tasks.EXECUTIONS)

    def running(self) -> dict[int, str]:
        """Process id -> key of the increments running right now."""
        return {int(pid): key for pid, key in fault_tasks.counts_raw(fault_tasks.RUNNING).items()}

    def redelivered(self) -> int:
        return sum(fault_tasks.counts(fault_tasks.REDELIVERED).values())

    def report(self, keys: list[str]) -> dict[str, int]:
        """Lost / duplicated effects and redeliveries (extra runs) over ``keys``."""
        applied, runs = self.applied(), self.executions()
        return {
            "lost": sum(1 for key in keys if applied.get(key, 0) == 0),
            "duplicated": sum(applied.get(key, 0) - 1 for key in keys if applied.get(key, 0) > 1),
            "redeliveries": sum(runs.get(key, 0) for key in keys) - sum(1 for key in keys if runs.get(key)),
        }


def fault_report(name: str, counts: dict[str, int]) -> dict[str, int]:
    """Print one fault scenario's ``lost / duplicated / redeliveries`` (``pytest -s`` shows
    it) and return the counts, so every scenario reports the same way."""
    line = f"[{name}] lost={counts['lost']} duplicated={counts['duplicated']} redeliveries={counts['redeliveries']}"
    print(f"\n{line}")  # noqa: T201 - the fault report
    return counts


@pytest.fixture
def effects(transactional_db: None) -> Iterator[Effects]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {fault_tasks.EFFECT_TABLE} (key text PRIMARY KEY, applied integer NOT NULL)"
        )
        cursor.execute(f"TRUNCATE {fault_tasks.EFFECT_TABLE}")
    Retailer.objects.get_or_create(name=fault_tasks.EFFECTS_RETAILER)
    fault_tasks.patient_redis().delete(
        fault_tasks.EXECUTIONS, fault_tasks.REDELIVERED, fault_tasks.FIXED, fault_tasks.RUNNING
    )
    return Effects()


@pytest.fixture(autouse=True)
def _fresh_broker_clients() -> Iterator[None]:
    broker.reset_for_tests()
    publish.web_publish_reset()
    yield
    broker.reset_for_tests()
    publish.web_publish_reset()
