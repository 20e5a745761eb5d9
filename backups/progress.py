"""Rate and ETA of a running backup.

Rate is bytes done over the seconds since copying started (an average over the whole copy,
steadier than an instantaneous rate, which jumps with every large file). ETA is the bytes left
over that rate, answered only once it means something: the walk is finished (the total is
final), at least ``ETA_MIN_SECONDS`` of copying have passed, and some bytes are done.
Otherwise it is null, never a guess.
"""

from __future__ import annotations

from django.utils import timezone

from backups.models import Backup

ETA_MIN_SECONDS = 3.0


def backup_rate(backup: Backup) -> float | None:
    """Bytes per second since copying began (to its end, for a finished backup)."""
    if backup.copy_started_at is None:
        return None
    end = backup.finished_at or timezone.now()
    seconds = (end - backup.copy_started_at).total_seconds()
    return round(backup.bytes_done / seconds, 1) if seconds > 0 else None


def backup_eta_seconds(backup: Backup) -> float | None:
    rate = backup_rate(backup)
    if not (backup.running and backup.total_final and rate and backup.bytes_done and backup.copy_started_at):
        return None
    if (timezone.now() - backup.copy_started_at).total_seconds() < ETA_MIN_SECONDS:
        return None
    return round(max(backup.bytes_total - backup.bytes_done, 0) / rate, 1)
