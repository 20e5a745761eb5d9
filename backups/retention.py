"""Retention: which ``done`` backups a retailer keeps (the rule is pure; the policy is a row).

Kept, as restic's ``forget --keep-last/--keep-daily/--keep-weekly`` does: the newest
``keep_last``; the newest backup of each of the last ``keep_daily`` days (today included);
the newest of each of the last ``keep_weekly`` ISO weeks (this week included). Days and weeks
are the retailer's local ones. The newest ``done`` backup is always kept (a running backup
reuses its chunks), and so is a backup a restore or verify is reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.utils import timezone

from app.tenancy.models import Retailer
from backups.models import Backup, BackupPolicy, Job


@dataclass(frozen=True)
class Retention:
    keep_last: int
    keep_daily: int
    keep_weekly: int


def retailer_zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def retention_keep(
    backups: Iterable[tuple[int, datetime]], *, rule: Retention, now: datetime, zone: tzinfo
) -> set[int]:
    """The ids to keep of ``backups`` (id, taken at), given newest first."""
    today = now.astimezone(zone).date()
    keep: set[int] = set()
    days: set[object] = set()
    weeks: set[object] = set()
    for index, (backup_id, taken_at) in enumerate(backups):
        day = taken_at.astimezone(zone).date()
        week = day.isocalendar()[:2]
        age_days = (today - day).days
        this_week = today.toordinal() - today.weekday()
        age_weeks = (this_week - (day.toordinal() - day.weekday())) // 7
        if index < max(rule.keep_last, 1):
            keep.add(backup_id)
        if age_days < rule.keep_daily and day not in days:
            keep.add(backup_id)
            days.add(day)
        if age_weeks < rule.keep_weekly and week not in weeks:
            keep.add(backup_id)
            weeks.add(week)
    return keep


def policy_get(*, retailer_id: int) -> BackupPolicy:
    """The retailer's policy, created with the defaults on first use."""
    policy, _ = BackupPolicy.objects.get_or_create(retailer_id=retailer_id)
    return policy


def backups_expired(*, retailer_id: int, time_zone: str) -> list[Backup]:
    """The ``done`` backups past the retailer's retention, oldest first (none that a restore or
    verify job is reading)."""
    policy = policy_get(retailer_id=retailer_id)
    rule = Retention(policy.keep_last, policy.keep_daily, policy.keep_weekly)
    done = list(Backup.objects.filter(retailer_id=retailer_id, state=Backup.State.DONE).order_by("-created_at", "-id"))
    zone = retailer_zone(time_zone)
    keep = retention_keep(((b.pk, b.created_at) for b in done), rule=rule, now=timezone.now(), zone=zone)
    open_jobs = Job.objects.filter(backup__retailer_id=retailer_id, state__in=(Job.State.QUEUED, Job.State.RUNNING))
    reading = set(open_jobs.values_list("backup_id", flat=True))
    return [b for b in reversed(done) if b.pk not in keep and b.pk not in reading]


def policy_update(*, retailer_id: int, now: datetime | None = None, **fields: int | None) -> BackupPolicy:
    """Change retention and schedule fields. Turning the schedule on (or moving its hour) after
    today's hour has passed starts the first scheduled backup tomorrow, not at once; at most
    one scheduled backup starts per local day."""
    moment = now or timezone.now()
    with transaction.atomic():
        policy = policy_get(retailer_id=retailer_id)
        policy = BackupPolicy.objects.select_for_update().get(pk=policy.pk)
        hour_before = policy.schedule_hour
        for name, value in fields.items():
            setattr(policy, name, value)
        if policy.schedule_hour is not None and policy.schedule_hour != hour_before:
            zone = Retailer.objects.values_list("time_zone", flat=True).get(pk=retailer_id)
            local = moment.astimezone(retailer_zone(zone))
            if local.hour >= policy.schedule_hour:  # else today's start (if it ran) still counts
                policy.last_scheduled_on = local.date()
        policy.updated_at = moment
        policy.save()
    return policy
