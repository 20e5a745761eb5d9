"""Operator screens: raw events and per-minute counters, read-only (they are written only by ingestion)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from analytics.models import RawEvent, SkuMinuteCount


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RawEvent)
class RawEventAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "retailer", "type", "sku", "variant", "session", "event_id")
    list_filter = ("type",)
    search_fields = ("sku", "event_id", "session")
    date_hierarchy = "occurred_at"
    list_select_related = ("retailer",)
    show_full_result_count = False


@admin.register(SkuMinuteCount)
class SkuMinuteCountAdmin(ReadOnlyAdmin):
    list_display = ("minute", "retailer", "sku", "variant", "page_view", "product_view", "add_to_cart", "purchase")
    search_fields = ("sku",)
    date_hierarchy = "minute"
    list_select_related = ("retailer",)
    show_full_result_count = False
