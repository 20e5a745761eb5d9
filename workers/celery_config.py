"""Celery settings derived from Django settings, in one place (the beat schedule too).

The visibility timeout of the Redis transport is the time after which an
unacknowledged message is handed to another worker. kombu counts it from the
moment a message is *prefetched*, and the unacknowledged set is shared by every
queue, so one value serves all and it must exceed, for every task: the longest
wait of a prefetched message (prefetch multiplier x the longest hard limit of
its worker group) + its hard time limit + its longest countdown. Every task is
time-boxed (``reliable_task`` requires limits), countdowns and ETAs are capped at
half the timeout, retry countdowns at ``CELERY_RETRY_BACKOFF_CAP`` (600 s), so
the default of one hour holds for tasks of up to ~25 minutes in a prefetch-1
group and ~10 minutes in the prefetch-4 group; ``workers.limits`` checks it
when a worker starts, and a test with the default settings. It is set
everywhere Celery reads it.
"""

from __future__ import annotations

from celery.schedules import crontab
from django.conf import settings
from kombu import Queue as KombuQueue

from workers.broker import broker_is_redis
from workers.kombu_redis_reconnect import TRANSPORT as REDIS_RECONNECT_TRANSPORT
from workers.routing import ALL_QUEUES, Queue

_transport = {
    "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": settings.CELERY_UNACKED_RESTORE_INTERVAL,
    "unacked_restore_throttle": settings.CELERY_UNACKED_RESTORE_THROTTLE,
    # A worker killed during a restore sweep leaves the sweep's lock behind; kombu's
    # default of 300 s would hold up every restore that long.
    "unacked_mutex_expire": min(300, settings.CELERY_VISIBILITY_TIMEOUT),
    # A broker that vanishes without closing TCP must not hang a publish forever.
    "socket_timeout": 10.0,
    "socket_connect_timeout": 5.0,
}

broker_url = settings.CELERY_BROKER_URL
# On Redis, kombu's transport fenced in two layers: workers.kombu_redis records the holder of
# every unacknowledged message, so a dead worker's messages come back in seconds
# (workers.recovery), and workers.kombu_redis_reconnect keeps a worker alive through a broker
# outage (celery#9250). Other schemes (rediss://, RabbitMQ) keep kombu's own transport.
broker_transport = REDIS_RECONNECT_TRANSPORT if broker_is_redis() else None
broker_transport_options = _transport
result_backend_transport_options = _transport
visibility_timeout = settings.CELERY_VISIBILITY_TIMEOUT
broker_connection_retry_on_startup = True
# Celery's Django fixup closes every database connection before and after each task unless
# this is set: a new PostgreSQL backend per task, measured at a quarter of an ingest batch's
# time (bench/ingest_bench.py). Connections are kept instead, and Django's own rules
# (CONN_MAX_AGE, CONN_HEALTH_CHECKS) are applied around each task, as around each web
# request (workers.signals.close_old_connections); the fixup still closes them on fork.
CELERY_DB_REUSE_MAX = 1_000_000_000
broker_connection_timeout = 5.0
imports = tuple(settings.CELERY_IMPORTS)
task_queues = [KombuQueue(name) for name in ALL_QUEUES]
task_default_queue = Queue.DEFAULT.value
task_acks_late = True
task_reject_on_worker_lost = True
task_acks_on_failure = True
task_acks_on_timeout = True
task_ignore_result = True
task_serializer = "json"
accept_content = ["json"]
result_serializer = "json"
timezone = "UTC"
enable_utc = True
worker_prefetch_multiplier = 1
# On a connection loss, AMQP brokers hand the unacknowledged messages of the lost connection
# to other consumers at once, so a task still running here would run twice at the same time:
# cancel it. A Redis broker keeps them unacknowledged (the running task acknowledges through
# its channel once the broker is back, workers.kombu_redis_reconnect), so cancelling would only
# throw the work away and kill the pool process that ran it.
worker_cancel_long_running_tasks_on_connection_loss = not broker_is_redis()
worker_soft_shutdown_timeout = settings.CELERY_SOFT_SHUTDOWN_TIMEOUT
worker_enable_soft_shutdown_on_idle = True
worker_max_memory_per_child = settings.CELERY_WORKER_MAX_MEMORY_PER_CHILD_KB
worker_hijack_root_logger = False
worker_send_task_events = False
worker_deduplicate_successful_tasks = False


def _periodic(task: str, schedule: crontab | float) -> dict[str, object]:
    """A beat entry. Periodic jobs are naturally idempotent (purges, sweeps), so the
    required idempotency key only names the schedule entry in logs and dead letters."""
    return {"task": task, "schedule": schedule, "kwargs": {"idempotency_key": f"beat:{task}"}}


# Periodic jobs, all of them, in one place.
beat_schedule = {
    "outbox-purge": _periodic("workers.outbox_purge", crontab(minute="17")),
    "idempotency-purge": _periodic("workers.idempotency_purge", crontab(minute="47")),
    # Messages a worker took and lost (killed mid-BRPOP) go back to their queue (workers.journal).
    "journal-sweep": _periodic("workers.journal_sweep", 10.0),
    "analytics-events-purge": _periodic("analytics.events_purge", crontab(minute="27")),
    "analytics-demand-refresh": _periodic("analytics.demand_refresh_recent", crontab(minute="*/5")),
    # Schedule windows start and end on minute boundaries: reprice the snapshots that expired.
    "pricing-schedule-boundaries": _periodic("pricing.schedule_boundaries", crontab(minute="*")),
    # Redis copies a commit could not make (Redis away, process died) are made within a minute.
    "pricing-snapshots-resync": _periodic("pricing.snapshots_resync", crontab(minute="*")),
    # Webhook retries wait in PostgreSQL (next_attempt_at); this hands the due ones to workers.
    "notifications-deliveries-sweep": _periodic("notifications.deliveries_sweep", 2.0),
    # Email retries wait in PostgreSQL too, and so do rows whose drain message was lost.
    "notifications-emails-sweep": _periodic("notifications.emails_sweep", 2.0),
    # Daily backups at each retailer's local hour (once per local day, however often it runs).
    "backups-schedule-tick": _periodic("backups.schedule_tick", crontab(minute="*")),
    # A backup whose chain of tasks broke (a dead letter whose hook failed) is resumed or failed.
    "backups-stalled-sweep": _periodic("backups.stalled_sweep", crontab(minute="*")),
}
