"""Celery settings derived from Django settings, in one place.

The Redis transport's visibility timeout is set everywhere Celery reads it; it
must exceed the longest prefetch wait + hard time limit + countdown of any task.
"""

from __future__ import annotations

from django.conf import settings
from kombu import Queue as KombuQueue

from workers.routing import ALL_QUEUES

_transport = {
    "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": settings.CELERY_UNACKED_RESTORE_INTERVAL,
    "unacked_restore_throttle": settings.CELERY_UNACKED_RESTORE_THROTTLE,
}

broker_url = settings.CELERY_BROKER_URL
broker_transport_options = _transport
result_backend_transport_options = _transport
visibility_timeout = settings.CELERY_VISIBILITY_TIMEOUT
broker_connection_retry_on_startup = True
task_queues = [KombuQueue(name) for name in ALL_QUEUES]
task_default_queue = "default"
task_acks_late = True
task_reject_on_worker_lost = True
task_ignore_result = True
task_serializer = "json"
accept_content = ["json"]
worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True
worker_max_memory_per_child = settings.CELERY_WORKER_MAX_MEMORY_PER_CHILD_KB
worker_hijack_root_logger = False
worker_send_task_events = False
