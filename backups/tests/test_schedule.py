"""The daily schedule: off by default; one backup per retailer and local day at the local hour,
however often beat ticks (two beats, a redelivered tick), followed by a prune."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from app.tenancy.models import Retailer
from backups.models import Backup, BackupPolicy, Prune
from backups.retention import policy_update
from backups.scheduling import scheduled_backups_start
from backups.tests.pipeline import outbox_drain

# 18:00 UTC is 03:00 the next day in Tokyo (UTC+9, no daylight saving time).
BEFORE = datetime(2026, 12, 3, 17, 59, tzinfo=UTC)
AT = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)


def tokyo_at_three(tenant) -> None:
    Retailer.objects.filter(pk=tenant.retailer.id).update(time_zone="Asia/Tokyo")
    BackupPolicy.objects.create(retailer_id=tenant.retailer.id, schedule_hour=3)


def test_the_schedule_is_off_by_default(alice, backup_dirs) -> None:
    alice.client().get("/v1/backup-policy")  # creates the policy with its defaults

    assert scheduled_backups_start(now=AT) == []
    assert alice.client().get("/v1/backup-policy").json()["schedule_hour"] is None


def test_a_backup_starts_once_per_local_day_at_the_local_hour(alice, bob, backup_dirs) -> None:
    tokyo_at_three(alice)

    before = scheduled_backups_start(now=BEFORE)
    at = scheduled_backups_start(now=AT)
    again = scheduled_backups_start(now=AT + timedelta(minutes=1))  # the next tick
    outbox_drain()
    later_that_day = scheduled_backups_start(now=AT + timedelta(hours=12))
    next_day = scheduled_backups_start(now=AT + timedelta(days=1))

    assert (before, at, again, later_that_day, next_day) == ([], [alice.retailer.id], [], [], [alice.retailer.id])
    assert Backup.objects.filter(retailer=alice.retailer).count() == 2
    assert Backup.objects.filter(retailer=bob.retailer).count() == 0
    assert Prune.objects.get(retailer=alice.retailer, state="done")  # the first day's, after its backup


@pytest.mark.django_db(transaction=True)
def test_two_beats_ticking_at_once_start_one_backup(alice, backup_dirs) -> None:
    tokyo_at_three(alice)
    barrier = threading.Barrier(2)
    results: list[list[int]] = []

    def tick() -> None:
        barrier.wait()
        results.append(scheduled_backups_start(now=AT))
        connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [[], [alice.retailer.id]]
    assert Backup.objects.filter(retailer=alice.retailer).count() == 1


def test_the_policy_api_sets_retention_and_the_schedule(alice, bob, backup_dirs) -> None:
    changed = alice.client().patch("/v1/backup-policy", {"keep_last": 3, "schedule_hour": 2}, format="json")
    refused = alice.client().patch("/v1/backup-policy", {"keep_last": 0, "schedule_hour": 24}, format="json")

    assert changed.status_code == 200
    body = changed.json()
    assert (body["keep_last"], body["keep_daily"], body["keep_weekly"], body["schedule_hour"]) == (3, 14, 8, 2)
    assert body["time_zone"] == "UTC"
    assert refused.status_code == 400
    assert {d["field"] for d in refused.json()["error"]["details"]} == {"keep_last", "schedule_hour"}
    assert bob.client().get("/v1/backup-policy").json()["keep_last"] == 7


def test_turning_the_schedule_on_after_todays_hour_starts_tomorrow(alice, backup_dirs) -> None:
    Retailer.objects.filter(pk=alice.retailer.id).update(time_zone="Asia/Tokyo")

    policy = policy_update(retailer_id=alice.retailer.id, schedule_hour=2, now=AT)  # 03:00 in Tokyo

    assert policy.last_scheduled_on == AT.astimezone(ZoneInfo("Asia/Tokyo")).date()
    assert scheduled_backups_start(now=AT) == []
    assert scheduled_backups_start(now=AT + timedelta(days=1, hours=-1)) == [alice.retailer.id]  # 02:00 tomorrow
