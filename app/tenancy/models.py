"""Retailers, their API keys and allowed origins, the audit log and replayable POSTs."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Retailer(models.Model):
    name = models.CharField(max_length=200, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    default_currency = models.CharField(max_length=3, default="USD")
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute per key; empty means the default setting."
    )
    pricing_paused = models.BooleanField(
        default=False, help_text="When set, prices are answered as base prices and rules are ignored."
    )
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class AllowedOrigin(models.Model):
    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="origins")
    origin = models.CharField(max_length=255, help_text="scheme://host[:port], e.g. https://shop.example")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "origin"], name="uniq_retailer_origin")]

    def __str__(self) -> str:
        return self.origin


class ApiKey(models.Model):
    class Kind(models.TextChoices):
        PUBLISHABLE = "pk", "publishable"
        SECRET = "sk", "secret"

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE, related_name="keys")
    kind = models.CharField(max_length=2, choices=Kind.choices)
    prefix = models.CharField(max_length=16, db_index=True, help_text="First characters, safe to show and log.")
    key_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the whole key.")
    publishable_value = models.CharField(
        max_length=64, blank=True, default="", help_text="Publishable keys are public and may be shown again."
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Set when rotated: end of the grace period.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["retailer", "kind"])]

    def __str__(self) -> str:
        return f"{self.prefix}…"

    def is_active(self, now: object | None = None) -> bool:
        moment = now or timezone.now()
        if self.revoked_at is not None and self.revoked_at <= moment:  # type: ignore[operator]
            return False
        return self.expires_at is None or self.expires_at > moment  # type: ignore[operator]


class AuditEntry(models.Model):
    """Who changed what, when, from which value to which (read-only in the admin)."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=100, help_text="staff:<username> or key:<prefix>")
    retailer = models.ForeignKey(Retailer, null=True, blank=True, on_delete=models.SET_NULL)
    entity = models.CharField(max_length=50)
    entity_id = models.CharField(max_length=255)  # an allowed origin is up to 255 characters
    action = models.CharField(max_length=20)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["retailer", "entity", "entity_id"])]

    def __str__(self) -> str:
        return f"{self.actor} {self.action} {self.entity} {self.entity_id}"


class IdempotentRequest(models.Model):
    """The first answer to a POST sent with an ``Idempotency-Key`` header."""

    retailer = models.ForeignKey(Retailer, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    route = models.CharField(max_length=200)
    body_hash = models.CharField(max_length=64)
    completed = models.BooleanField(default=False)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.BinaryField(null=True)
    response_headers = models.JSONField(null=True, help_text="Headers replayed with the body.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retailer", "route", "key"], name="uniq_idempotent_request")]

    def __str__(self) -> str:
        return f"{self.route} {self.key}"
