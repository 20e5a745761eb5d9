"""The daily schedule: beat's ``backups.schedule_tick`` starts the backups that are due.

A retailer whose policy has a ``schedule_hour`` gets one backup per local day, started at the
first tick once its local hour reaches that hour (a tick missed while beat was down is caught
up later the same day), followed by a prune (which waits for the backup to end). The day is
claimed by a conditional update of ``last_scheduled_on`` that must change exactly one row, in
the transaction that starts the backup: two beats, or a redelivered tick, start nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q

from backups.models import BackupPolicy
from backups.pruning import prune_request
from backups.retention import retailer_zone
from backups.services import backup_start


def scheduled_backups_start(*, now: datetime) -> list[int]:
    """Start today's backup of every retailer whose local schedule hour has come; returns
    the ids of the retailers started. Idempotent per retailer and local day."""
    started = []
    policies = BackupPolicy.objects.filter(schedule_hour__isnull=False).select_related("retailer")
    for policy in policies.iterator(chunk_size=500):
        local = now.astimezone(retailer_zone(policy.retailer.time_zone))
        assert policy.schedule_hour is not None
        if local.hour < policy.schedule_hour or policy.last_scheduled_on == local.date():
            continue
        with transaction.atomic():
            not_today = Q(last_scheduled_on__isnull=True) | Q(last_scheduled_on__lt=local.date())
            claimed = BackupPolicy.objects.filter(not_today, pk=policy.pk).update(last_scheduled_on=local.date())
            if claimed != 1:
                continue  # another tick took this day
            backup_start(retailer_id=policy.retailer_id)
            prune_request(retailer_id=policy.retailer_id)  # it waits for the backup to end
        started.append(policy.retailer_id)
    return started
