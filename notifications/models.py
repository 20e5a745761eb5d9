"""Rows of the notifications app: webhook endpoints, events, deliveries and attempts;
notification addresses, email notifications and the suppression list.

Every background effect has a row (STYLE rule 5): deliveries are claimed by a
conditional update under their endpoint's lock (a slot of them at once, sharing a token),
and an email notification records ``sending`` before the SMTP conversation and ``sent``
after it.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from app.tenancy.models import Retailer


class WebhookEndpoint(models.Model):
    """A retailer's URL subscribed to event types. Secrets are Fernet tokens (``notifications.secrets``)."""

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2048)
    description = models.CharField(max_length=200, blank=True, default="")
    event_types = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    secret_encrypted = models.TextField()
    previous_secret_encrypted = models.TextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Health: the circuit breaker and the unhealthy → disabled path (notifications.services.health).
    consecutive_failures = models.PositiveIntegerField(default=0)
    circuit_open_until = models.DateTimeField(null=True, blank=True)
    first_failure_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    unhealthy_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "url"], name="notifications_endpoint_url_once")]

    def __str__(self) -> str:
        return f"{self.retailer_id}:{self.url}"


class WebhookEvent(models.Model):
    """One announced event, kept for delivery and replay. ``public_id`` is the ``webhook-id``."""

    public_id = models.CharField(max_length=64, unique=True)
    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="webhook_events")
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["retailer", "event_type", "occurred_at"])]

    def __str__(self) -> str:
        return self.public_id


class Delivery(models.Model):
    """One event to one endpoint. ``pending`` (due at ``next_attempt_at``) → ``sending``
    (leased until ``lease_until``) → ``succeeded`` / ``pending`` again / ``failed``.
    ``held`` is an event for a disabled endpoint: stored, sent only on replay."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        HELD = "held"

    # No index of their own: ``notifications_delivery_once`` leads with the event, the
    # (endpoint, state) index with the endpoint. Every claim and record writes a new version
    # of the row into each index (a state change is never a HOT update): with these two gone
    # and the due index partial, a delivery's insert, claim and success write 11 index
    # entries instead of 18.
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The claim that holds a ``sending`` delivery: the deliveries of one slot share it
    # (notifications.services.delivery), and the endpoint's concurrency counts slots.
    slot = models.CharField(max_length=32, null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "endpoint"], name="notifications_delivery_once")]
        indexes = [
            # The sweep's due rows; only the open states, so a finished delivery leaves it.
            models.Index(
                fields=["state", "next_attempt_at"],
                name="notifications_delivery_open",
                condition=models.Q(state__in=["pending", "sending"]),
            ),
            models.Index(fields=["endpoint", "state"]),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.state})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")
    outcome = models.CharField(max_length=20, default="")

    class Meta:
        ordering = ["number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"


class NotificationAddress(models.Model):
    """An email address of a retailer; mailed notifications only once ``confirmed_at`` is set."""

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="notification_addresses")
    email = models.EmailField(max_length=254)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    token_hash = models.CharField(max_length=64, db_index=True)
    token_expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "email"], name="notifications_address_once")]

    def __str__(self) -> str:
        return self.email


class EmailNotification(models.Model):
    """One email to one address, sent once: ``pending`` (due at ``next_attempt_at``) →
    ``sending`` (claimed by a drain under ``claim``, leased until ``lease_until``) → ``sent``,
    or ``pending`` again (a 4xx, the server away) / ``failed`` (permanent, or the last
    attempt) / ``suppressed`` (the address is on the suppression list). The row is the
    durable record of the work (``notifications.services.email_drain``): no message per email."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        SUPPRESSED = "suppressed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="email_notifications")
    kind = models.CharField(max_length=64)
    to_email = models.EmailField(max_length=254)
    context = models.JSONField(default=dict)
    dedup_key = models.CharField(max_length=255, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The drain holding a ``sending`` row: the rows of one claim share it.
    claim = models.CharField(max_length=32, null=True, blank=True)
    # When a drain was last published for the row (the sweep publishes again once it is stale).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="notifications_email_due")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to_email} ({self.state})"

    @property
    def message_id(self) -> str:
        return f"<{self.id}@storefabric>"


class Suppression(models.Model):
    """An address we do not mail: a hard bounce, a complaint, or a 5.1.x / 5.2.x SMTP answer."""

    email = models.EmailField(max_length=254, unique=True)
    reason = models.CharField(max_length=40)
    detail = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.email} ({self.reason})"
