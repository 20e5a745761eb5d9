"""Serializer fields and shapes shared by the pricing API modules."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from app.pagination import CursorPage, datetime_readable
from pricing.models import RepricingJob
from pricing.money import amount_format


@extend_schema_field(OpenApiTypes.STR)
class MoneyField(serializers.Field):  # type: ignore[type-arg]
    """An amount as a string with exactly the currency's minor units (``"19.99"``, ``"1999"``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        return (getattr(instance, str(self.source)), instance.currency)

    def to_representation(self, value: Any) -> str | None:
        amount, currency = value
        return None if amount is None else amount_format(amount, currency)


class BySkuPagination(CursorPage):
    ordering = "sku"
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"


class NewestFirstPagination(CursorPage):
    ordering = ("-at", "-id")
    page_size = 100

    def position_readable(self, position: str) -> bool:
        return datetime_readable(position)


class RepricingJobOutputSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    status = serializers.CharField()
    reason = serializers.CharField()
    shards_total = serializers.IntegerField()
    shards_done = serializers.IntegerField()
    skus_total = serializers.IntegerField()
    skus_changed = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, job: RepricingJob) -> str:
        return reverse("pricing:repricing-job", kwargs={"job_id": job.id})
