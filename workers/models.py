"""Rows behind every background effect: the outbox, idempotency claims, dead letters."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):
    """A message committed with the business change it announces; the relay publishes it.

    ``pending`` → (relay) ``sent`` → (task succeeded / events dispatched) ``done``,
    or ``failed`` when its task became a dead letter. A ``sent`` row that is not
    ``done`` by ``next_publish_at`` is published again (the broker may have lost it).
    ``request_id`` is the id of the web request (or task) that wrote the row; the relay
    publishes it with the message, so the task's log lines name the request that caused it.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        DONE = "done"
        FAILED = "failed"

    task_name = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    next_publish_at = models.DateTimeField(default=timezone.now)
    request_id = models.CharField(max_length=128, null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_publish_at"]),
            models.Index(fields=["status", "done_at"], name="workers_outbox_purge_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} {self.idempotency_key} ({self.status})"


class IdempotencyRecord(models.Model):
    """A claimed effect: the unique ``key`` is the barrier (see ``workers.idempotency``).

    Rows older than ``IDEMPOTENCY_WINDOW_SECONDS`` are purged, which bounds the
    dedup memory: a duplicate arriving later than that is applied again.
    """

    key = models.CharField(max_length=300, unique=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.key


class DeadLetter(models.Model):
    """A message that will not be retried again: after its last retry, a permanent
    error, a hard time limit, or too many deliveries. One row per (task, key)."""

    class Status(models.TextChoices):
        OPEN = "open"
        REPLAYED = "replayed"

    task_name = models.CharField(max_length=200)
    idempotency_key = models.CharField(max_length=255)
    task_id = models.CharField(max_length=255)
    queue = models.CharField(max_length=50, blank=True)
    kwargs = models.JSONField(default=dict)
    retailer_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    exception = models.TextField()
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=1)
    failures = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    first_failed_at = models.DateTimeField(default=timezone.now)
    last_failed_at = models.DateTimeField(default=timezone.now)
    replays = models.PositiveIntegerField(default=0)
    last_replayed_at = models.DateTimeField(null=True, blank=True)
    last_replayed_by = models.CharField(max_length=150, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["task_name", "idempotency_key"], name="workers_deadletter_task_key_uniq")
        ]
        indexes = [models.Index(fields=["status", "-last_failed_at"], name="workers_deadletter_open_idx")]

    def __str__(self) -> str:
        return f"{self.task_name} {self.idempotency_key} ({self.status})"
