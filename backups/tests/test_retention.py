"""The retention rule: keep the last N, the newest of each of D local days and W ISO weeks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from backups.retention import Retention, retention_keep

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)  # a Thursday


def taken(*hours_ago: float) -> list[tuple[int, datetime]]:
    return [(n, NOW - timedelta(hours=h)) for n, h in enumerate(hours_ago)]


def test_keep_last_keeps_the_newest_n_and_at_least_one() -> None:
    backups = taken(1, 2, 3, 4)

    assert retention_keep(backups, rule=Retention(2, 0, 0), now=NOW, zone=UTC) == {0, 1}
    assert retention_keep(backups, rule=Retention(0, 0, 0), now=NOW, zone=UTC) == {0}


def test_keep_daily_keeps_the_newest_of_each_of_the_last_d_days() -> None:
    backups = taken(1, 2, 25, 26, 49, 73)  # today x2, yesterday x2, 2 days ago, 3 days ago

    assert retention_keep(backups, rule=Retention(1, 3, 0), now=NOW, zone=UTC) == {0, 2, 4}


def test_keep_weekly_keeps_the_newest_of_each_iso_week() -> None:
    day = 24
    backups = taken(1, 2 * day, 4 * day, 8 * day, 15 * day, 30 * day)  # Thu, Tue, Sun(prev week), ...

    assert retention_keep(backups, rule=Retention(1, 0, 3), now=NOW, zone=UTC) == {0, 2, 4}


def test_days_are_the_retailers_local_days() -> None:
    backups = taken(3, 11)  # 09:00 and 01:00 UTC on Dec 3: Dec 3 01:00 and Dec 2 17:00 in Los Angeles
    la = ZoneInfo("America/Los_Angeles")

    assert retention_keep(backups, rule=Retention(1, 2, 0), now=NOW, zone=UTC) == {0}
    assert retention_keep(backups, rule=Retention(1, 2, 0), now=NOW, zone=la) == {0, 1}
