"""Serializer fields and shapes shared by the pricing API modules."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from app.errors import ApiError
from app.input_guard import invalid_characters
from app.text_rules import text_storable
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


class CursorPage(CursorPagination):
    """Cursor pagination whose unreadable cursor or page size is a 400 naming the parameter (DRF
    answers 404 for the cursor and silently uses its default for a page size it cannot read)."""

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """DRF's parameters, with the page size's bounds that :meth:`get_page_size` enforces."""
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1, "maximum": self.max_page_size}
        return parameters

    def get_page_size(self, request: Any) -> int | None:
        raw = request.query_params.get(self.page_size_query_param) if self.page_size_query_param else None
        if raw is None:
            return self.page_size
        limit = self.max_page_size or self.page_size or 0
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= limit):
            problem = {"field": self.page_size_query_param, "code": "invalid", "message": f"1 to {limit}."}
            raise ApiError("validation_failed", details=[problem])
        return int(raw)

    def decode_cursor(self, request: Any) -> Any:
        try:
            cursor = super().decode_cursor(request)
        except NotFound as error:
            raise ApiError(
                "validation_failed",
                details=[
                    {"field": self.cursor_query_param, "code": "invalid", "message": "Use a next or previous link."}
                ],
            ) from error
        if cursor is None or cursor.position is None:
            return cursor
        position = str(cursor.position)  # the text after p= in the decoded cursor (typed int by the stubs)
        if not text_storable(position):
            raise invalid_characters([self.cursor_query_param])  # base64 hides a NUL from the request guard
        if not self.position_readable(position):
            raise ApiError(
                "validation_failed",
                details=[
                    {"field": self.cursor_query_param, "code": "invalid", "message": "Use a next or previous link."}
                ],
            )
        return cursor

    def position_readable(self, position: str) -> bool:
        """Whether the database can compare the ordering field with ``position`` (a forged cursor may hold anything)."""
        return True


class BySkuPagination(CursorPage):
    ordering = "sku"
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"


class NewestFirstPagination(CursorPage):
    ordering = ("-at", "-id")
    page_size = 100

    def position_readable(self, position: str) -> bool:
        try:
            return parse_datetime(position) is not None
        except ValueError:  # well formed but impossible: 2025-02-30
            return False


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
