"""The Procfile's worker groups are the ones ``workers.routing`` declares, and long queues prefetch one."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from app.celery import celery_app
from workers.celery_config import worker_prefetch_multiplier as default_prefetch_multiplier
from workers.routing import ALL_QUEUES, LONG_QUEUES, WORKER_GROUPS, worker_group_of
from workers.testing import ROOT

LONG_TASK_SECONDS = 300
"""A task whose hard limit is longer than this belongs on a long queue (prefetch one)."""


@dataclass(frozen=True)
class ProcfileWorker:
    queues: tuple[str, ...]
    prefetch_multiplier: int


def _procfile_workers() -> dict[str, ProcfileWorker]:
    workers = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        args = shlex.split(command)
        if "celery" not in args or "worker" not in args:
            continue
        queues = tuple(args[args.index("-Q") + 1].split(","))
        prefetch = next(
            (int(arg.split("=", 1)[1]) for arg in args if arg.startswith("--prefetch-multiplier=")),
            default_prefetch_multiplier,
        )
        workers[name.strip()] = ProcfileWorker(queues, prefetch)
    return workers


def test_procfile_worker_lines_are_the_declared_worker_groups():
    declared = {
        group.process: ProcfileWorker(tuple(group.queues), group.prefetch_multiplier) for group in WORKER_GROUPS
    }

    assert _procfile_workers() == declared


def test_every_queue_is_served_by_exactly_one_worker_group():
    served = [queue for group in WORKER_GROUPS for queue in group.queues]

    assert sorted(served) == sorted(ALL_QUEUES)


def test_long_queues_prefetch_one_message_per_pool_process():
    for queue in LONG_QUEUES:
        group = worker_group_of(queue)
        assert group is not None, queue
        assert group.prefetch_multiplier == 1, (queue, group.process)
        assert _procfile_workers()[group.process].prefetch_multiplier == 1, (queue, group.process)


def test_tasks_that_may_run_for_minutes_are_on_long_queues():
    celery_app.loader.import_default_modules()

    long_tasks = {
        name: task.queue
        for name, task in celery_app.tasks.items()
        if not name.startswith("celery.") and (task.time_limit or 0) > LONG_TASK_SECONDS
    }

    assert long_tasks  # the purges, at least
    assert {name: queue for name, queue in long_tasks.items() if queue not in LONG_QUEUES} == {}
