"""Check that the visibility timeout covers every task (see ``workers.celery_config``).

kombu's Redis transport marks a message unacknowledged when a worker *prefetches* it,
and a restore sweep hands it to another worker once it is older than the visibility
timeout, whether or not the first still holds it. So from its prefetch a message may:

1. wait in its worker behind the tasks running before it. Its worker holds at most
   ``prefetch multiplier x pool processes`` messages and a process runs one at a time,
   so it waits at most ``multiplier - 1`` rounds of the longest hard limit among the
   queues its worker group serves; the bound counts ``multiplier`` rounds, one of margin
   (a pool still growing under ``--autoscale``, a child restarted for memory);
2. run up to its own hard time limit;
3. for a retry, wait its countdown first (an ETA message is held by the worker,
   unacknowledged, until it is due).

The sum must stay under the timeout. Worker groups come from ``workers.routing``.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from app.celery import celery_app
from workers.backoff import max_countdown
from workers.reliable import ReliableTask
from workers.routing import WORKER_GROUPS, WorkerGroup, worker_group_of


def _reliable_tasks() -> dict[str, ReliableTask]:
    return {name: task for name, task in sorted(celery_app.tasks.items()) if isinstance(task, ReliableTask)}


def prefetch_wait_bound(group: WorkerGroup, tasks: Sequence[ReliableTask]) -> float:
    """Longest a message prefetched by ``group`` can wait before it starts, in seconds."""
    longest = max((task.time_limit or 0 for task in tasks if task.queue in group.queues), default=0)
    return float(group.prefetch_multiplier * longest)


def visibility_timeout_problems(groups: tuple[WorkerGroup, ...] = WORKER_GROUPS) -> list[str]:
    """Tasks whose prefetch wait + hard time limit + longest retry countdown reach the
    visibility timeout: such a message would be handed to a second worker while the
    first still holds it. A task on a queue no worker group serves is a problem too."""
    timeout = settings.CELERY_VISIBILITY_TIMEOUT
    cap = min(settings.CELERY_RETRY_BACKOFF_CAP, max_countdown())
    tasks = _reliable_tasks()
    waits = {group.process: prefetch_wait_bound(group, list(tasks.values())) for group in groups}
    problems = []
    for name, task in tasks.items():
        group = worker_group_of(task.queue, groups)
        if group is None:
            problems.append(f"{name}: no worker group serves its queue {task.queue!r}")
            continue
        wait, countdown = waits[group.process], min(task.backoff_cap or cap, cap)
        if wait + (task.time_limit or 0) + countdown >= timeout:
            problems.append(
                f"{name}: prefetch wait {wait:.0f}s ({group.process}, prefetch {group.prefetch_multiplier}) "
                f"+ time_limit {task.time_limit}s + countdown {countdown:.0f}s >= visibility {timeout}s"
            )
    return problems
