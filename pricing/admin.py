"""Admin for operators: products and rules are written through the services (audit, repricing);
snapshots, history, jobs and the inputs are read-only."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from app.errors import ApiError
from app.tenancy.admin import RetailerAdmin as TenancyRetailerAdmin
from app.tenancy.audit import actor_for_request
from app.tenancy.models import Retailer
from pricing.models import (
    CompetitorPrice,
    DemandSignal,
    PriceHistory,
    PriceSnapshot,
    PricingPolicy,
    Product,
    RepricingJob,
    RepricingShard,
    Rule,
)
from pricing.product_fields import ProductInvalidError, product_fields_clean
from pricing.rules.base import ParamsError
from pricing.rules.pipeline import rule_params_validate
from pricing.services import policy_update, pricing_pause_set, product_upsert, rule_create, rule_delete, rule_update
from pricing.services.products import PRODUCT_COLUMNS
from pricing.services.rules import rules_delete
from pricing.services.switches import POLICY_FIELDS


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _raw_product(cleaned: dict[str, Any]) -> dict[str, Any]:
    amounts = ("base_price", "cost", "list_price")
    return {
        name: (str(cleaned[name]) if name in amounts and cleaned.get(name) is not None else cleaned.get(name))
        for name in PRODUCT_COLUMNS
    }


class ProductForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Product
        fields = ["retailer", "sku", *PRODUCT_COLUMNS]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        retailer = cleaned.get("retailer")
        if retailer is not None and cleaned.get("sku"):
            try:
                product_fields_clean(
                    _raw_product(cleaned),
                    sku=cleaned["sku"],
                    default_currency=retailer.default_currency,
                    min_margin_percent=getattr(
                        getattr(retailer, "pricing_policy", None), "min_margin_percent", Decimal(0)
                    ),
                )
            except ProductInvalidError as error:
                raise forms.ValidationError([row["message"] for row in error.details]) from error
        return cleaned


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = ProductForm
    list_display = ["sku", "name", "retailer", "currency", "base_price", "list_price", "inventory", "active"]
    list_filter = ["active", "currency", "retailer"]
    search_fields = ["sku", "name"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["retailer", "sku"] if obj else []

    def save_model(self, request: HttpRequest, obj: Product, form: Any, change: bool) -> None:
        result = product_upsert(
            retailer_id=obj.retailer_id,
            sku=obj.sku,
            data=_raw_product({name: getattr(obj, name) for name in PRODUCT_COLUMNS}),
            actor=actor_for_request(request),
        )
        obj.pk = result.product.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deactivate instead: history and snapshots stay consistent


class RuleForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Rule
        fields = ["retailer", "kind", "name", "position", "enabled", "skus", "params"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind") or getattr(self.instance, "kind", None)
        if kind:
            try:
                cleaned["params"] = rule_params_validate(kind, cleaned.get("params"))
            except ParamsError as error:
                raise forms.ValidationError(str(error)) from error
        return cleaned


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = RuleForm
    list_display = ["name", "kind", "retailer", "position", "enabled", "updated_at"]
    list_filter = ["kind", "enabled", "retailer"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["retailer", "kind"] if obj else []

    def save_model(self, request: HttpRequest, obj: Rule, form: Any, change: bool) -> None:
        values = {name: getattr(obj, name) for name in ("name", "position", "enabled", "skus", "params")}
        actor = actor_for_request(request)
        try:
            if change:
                result = rule_update(retailer_id=obj.retailer_id, rule_id=obj.pk, changes=values, actor=actor)
            else:
                result = rule_create(retailer_id=obj.retailer_id, kind=obj.kind, values=values, actor=actor)
        except ApiError as error:
            self.message_user(request, error.message, level="error")
            return
        obj.pk = result.rule.pk

    def delete_model(self, request: HttpRequest, obj: Rule) -> None:
        rule_delete(retailer_id=obj.retailer_id, rule_id=obj.pk, actor=actor_for_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        """The changelist's "Delete selected": each retailer's rules go in one audited delete and
        one repricing job, as a single delete does; the rows are locked first, so none can vanish."""
        by_retailer: dict[int, list[int]] = defaultdict(list)
        actor = actor_for_request(request)
        with transaction.atomic():
            selected = Rule.objects.select_for_update().filter(pk__in=queryset.values("pk"))
            for retailer_id, rule_id in selected.values_list("retailer_id", "pk"):
                by_retailer[retailer_id].append(rule_id)
            for retailer_id, rule_ids in by_retailer.items():
                rules_delete(retailer_id=retailer_id, rule_ids=rule_ids, actor=actor)


@admin.register(PricingPolicy)
class PricingPolicyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["retailer", *POLICY_FIELDS, "updated_at"]
    fields = ["retailer", *POLICY_FIELDS]

    def save_model(self, request: HttpRequest, obj: PricingPolicy, form: Any, change: bool) -> None:
        data = {name: None if getattr(obj, name) is None else str(getattr(obj, name)) for name in POLICY_FIELDS}
        try:
            policy, _ = policy_update(retailer_id=obj.retailer_id, data=data, actor=actor_for_request(request))
        except ApiError as error:
            self.message_user(request, error.message, level="error")
            return
        obj.pk = policy.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.unregister(Retailer)


@admin.register(Retailer)
class RetailerAdmin(TenancyRetailerAdmin):
    """The retailer screen of ``app.tenancy``, whose pause switch goes through the API's service.

    :func:`~pricing.services.pricing_pause_set` audits the switch and starts the repricing job that
    records every SKU's visible price change in price history; saving the field directly did neither.
    The switch lives on the tenancy model, but what it does is pricing's, so its admin is here.
    """

    def save_model(self, request: HttpRequest, obj: Retailer, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)  # a new retailer has no prices to record yet
            return
        with transaction.atomic():
            paused = obj.pricing_paused
            obj.pricing_paused = Retailer.objects.values_list("pricing_paused", flat=True).get(pk=obj.pk)
            super().save_model(request, obj, form, change)
            pricing_pause_set(retailer_id=obj.pk, paused=paused, actor=actor_for_request(request))
            obj.pricing_paused = paused


@admin.register(PriceSnapshot)
class PriceSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["sku", "retailer", "effective_price", "currency", "version", "valid_until", "computed_at"]
    list_filter = ["retailer", "active"]
    search_fields = ["sku"]


@admin.register(PriceHistory)
class PriceHistoryAdmin(ReadOnlyAdmin):
    list_display = ["sku", "variant", "retailer", "price", "currency", "version", "reason", "at"]
    list_filter = ["retailer"]
    search_fields = ["sku"]
    date_hierarchy = "at"


class RepricingShardInline(admin.TabularInline):  # type: ignore[type-arg]
    model = RepricingShard
    fields = ["index", "status", "skus_changed", "finished_at"]
    readonly_fields = ["index", "status", "skus_changed", "finished_at"]
    extra = 0
    can_delete = False


@admin.register(RepricingJob)
class RepricingJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "retailer", "reason", "status", "shards_done", "shards_total", "skus_changed", "created_at"]
    list_filter = ["status", "retailer"]
    inlines = [RepricingShardInline]


@admin.register(CompetitorPrice)
class CompetitorPriceAdmin(ReadOnlyAdmin):
    list_display = ["sku", "competitor", "price", "retailer", "observed_at"]
    search_fields = ["sku", "competitor"]


@admin.register(DemandSignal)
class DemandSignalAdmin(ReadOnlyAdmin):
    list_display = ["sku", "signal", "retailer", "updated_at"]
    search_fields = ["sku"]
