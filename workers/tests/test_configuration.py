"""The Celery configuration holds for every task the project declares."""

from __future__ import annotations

from app.celery import celery_app
from workers.celery_config import beat_schedule, broker_transport_options
from workers.limits import visibility_timeout_problems
from workers.reliable import ReliableTask
from workers.routing import ALL_QUEUES, Queue, WorkerGroup


def _project_tasks() -> dict[str, object]:
    celery_app.loader.import_default_modules()
    return {name: task for name, task in celery_app.tasks.items() if not name.startswith("celery.")}


def test_every_project_task_is_reliable_routed_and_time_boxed():
    tasks = _project_tasks()

    assert "workers.event_dispatch" in tasks
    for name, task in tasks.items():
        assert isinstance(task, ReliableTask), name
        assert task.queue in ALL_QUEUES, name
        assert 0 < task.soft_time_limit < task.time_limit, name
        assert task.acks_late, name
        assert task.reject_on_worker_lost, name


def test_visibility_timeout_covers_every_task_with_the_default_settings():
    assert visibility_timeout_problems() == []
    assert broker_transport_options["visibility_timeout"] == celery_app.conf.visibility_timeout
    assert celery_app.conf.broker_transport_options["visibility_timeout"] == 3600


def test_visibility_timeout_check_names_a_task_it_does_not_cover(settings):
    settings.CELERY_VISIBILITY_TIMEOUT = 60

    assert any(problem.startswith("workers.outbox_purge:") for problem in visibility_timeout_problems())


def test_visibility_timeout_check_counts_the_wait_of_a_prefetched_message():
    maintenance_in_a_prefetch_4_group = (
        WorkerGroup("worker_realtime", (Queue.PRICING, Queue.DEFAULT), prefetch_multiplier=1),
        WorkerGroup("worker_bulk", (Queue.INGEST, Queue.EMAIL, Queue.WEBHOOKS, Queue.MAINTENANCE), 4),
        WorkerGroup("worker_backups", (Queue.BACKUPS,), prefetch_multiplier=1),
    )

    problems = visibility_timeout_problems(groups=maintenance_in_a_prefetch_4_group)

    # 4 x 660 s waiting behind other purges + 660 s running + a 600 s retry countdown > 1 hour
    expected = (
        "workers.outbox_purge: prefetch wait 2640s (worker_bulk, prefetch 4) "
        "+ time_limit 660s + countdown 600s >= visibility 3600s"
    )
    assert expected in problems
    assert visibility_timeout_problems() == []  # the same purge, prefetched one at a time


def test_visibility_timeout_check_names_a_queue_no_worker_group_serves():
    without_maintenance = (WorkerGroup("worker_realtime", (Queue.PRICING, Queue.DEFAULT), prefetch_multiplier=1),)

    problems = visibility_timeout_problems(groups=without_maintenance)

    assert "workers.outbox_purge: no worker group serves its queue 'maintenance'" in problems


def test_every_beat_entry_names_a_reliable_task_with_a_key():
    tasks = _project_tasks()

    for entry in beat_schedule.values():
        assert isinstance(tasks[entry["task"]], ReliableTask)
        assert entry["kwargs"]["idempotency_key"].startswith("beat:")
