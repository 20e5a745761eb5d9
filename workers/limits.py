"""Check that the visibility timeout covers every task (see ``workers.celery_config``)."""

from __future__ import annotations

from django.conf import settings

from app.celery import celery_app
from workers.backoff import max_countdown
from workers.reliable import ReliableTask


def visibility_timeout_problems() -> list[str]:
    """Tasks whose hard time limit plus longest retry countdown reach the visibility
    timeout: such a message would be handed to a second worker while still running."""
    timeout = settings.CELERY_VISIBILITY_TIMEOUT
    cap = min(settings.CELERY_RETRY_BACKOFF_CAP, max_countdown())
    problems = []
    for name, task in sorted(celery_app.tasks.items()):
        if not isinstance(task, ReliableTask):
            continue
        needed = (task.time_limit or 0) + min(task.backoff_cap or cap, cap)
        if needed >= timeout:
            problems.append(f"{name}: time_limit {task.time_limit}s + countdown {cap:.0f}s >= visibility {timeout}s")
    return problems
