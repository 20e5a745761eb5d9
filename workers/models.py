"""Rows behind every background effect: the outbox (more models come with the fabric)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):
    """A message committed with the business change it announces; the relay publishes it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        DONE = "done"

    task_name = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    idempotency_key = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    next_publish_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["status", "next_publish_at"])]

    def __str__(self) -> str:
        return f"{self.task_name} {self.idempotency_key} ({self.status})"
