"""Operator screens: retailers (with origins), keys (rotate / revoke), the audit log.

Rotating and revoking need the change permission (a view-only operator may look, not act). A new
key's raw value is shown once, on the page answering the request that issued it: never in a
message, since Django's messages cookie is signed, not encrypted, and stays in the browser.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from app.tenancy.audit import audit_record
from app.tenancy.models import AllowedOrigin, ApiKey, AuditEntry, Retailer
from app.tenancy.services import IssuedKey, key_revoke, key_rotate, origin_normalize

AUDITED_RETAILER_FIELDS = ("name", "time_zone", "default_currency", "rate_limit_per_minute", "pricing_paused")


def _staff(request: HttpRequest) -> str:
    return f"staff:{request.user.get_username()}"


ISSUED_ATTRIBUTE = "_storefabric_issued_keys"


def _issued(request: HttpRequest) -> list[tuple[Retailer, IssuedKey]]:
    """The keys issued while answering this request (kept on the request object, nowhere else)."""
    if not hasattr(request, ISSUED_ATTRIBUTE):
        setattr(request, ISSUED_ATTRIBUTE, [])
    issued: list[tuple[Retailer, IssuedKey]] = getattr(request, ISSUED_ATTRIBUTE)
    return issued


def keys_issued_page(request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> HttpResponse:
    """The one page that shows the raw keys issued by this request; never cached by the browser."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "New keys: copy them now",
        "opts": model_admin.model._meta,
        "issued": [(retailer, issued.key, issued.raw) for retailer, issued in _issued(request)],
    }
    response = TemplateResponse(request, "tenancy/admin/keys_issued.html", context)
    add_never_cache_headers(response)
    return response


class AllowedOriginInline(admin.TabularInline):
    model = AllowedOrigin
    extra = 1


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("prefix", "kind", "created_at", "expires_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Retailer)
class RetailerAdmin(admin.ModelAdmin):
    list_display = ("name", "time_zone", "default_currency", "pricing_paused", "rate_limit_per_minute", "created_at")
    search_fields = ("name",)
    list_filter = ("pricing_paused",)
    inlines = (AllowedOriginInline, ApiKeyInline)
    actions = ("rotate_secret_key", "rotate_publishable_key")

    @transaction.atomic
    def save_model(self, request: HttpRequest, obj: Retailer, form: ModelForm, change: bool) -> None:
        before = {field: form.initial.get(field) for field in AUDITED_RETAILER_FIELDS} if change else None
        super().save_model(request, obj, form, change)
        after = {field: getattr(obj, field) for field in AUDITED_RETAILER_FIELDS}
        if before != after:
            audit_record(
                actor=_staff(request),
                retailer_id=obj.pk,
                entity="retailer",
                entity_id=str(obj.pk),
                action="update" if change else "create",
                before=before,
                after=after,
            )
        if not change:
            for kind in (ApiKey.Kind.PUBLISHABLE, ApiKey.Kind.SECRET):
                _issued(request).append((obj, key_rotate(retailer=obj, kind=kind, actor=_staff(request))))

    def response_add(self, request: HttpRequest, obj: Retailer, post_url_continue: str | None = None) -> HttpResponse:
        if _issued(request):
            return keys_issued_page(request, self)
        return super().response_add(request, obj, post_url_continue)

    @transaction.atomic
    def save_formset(self, request: HttpRequest, form: ModelForm, formset: Any, change: bool) -> None:
        if formset.model is not AllowedOrigin:
            super().save_formset(request, form, formset, change)
            return
        origins = formset.save(commit=False)
        for removed in formset.deleted_objects:
            audit_record(
                actor=_staff(request),
                retailer_id=removed.retailer_id,
                entity="origin",
                entity_id=removed.origin,
                action="delete",
                before={"origin": removed.origin},
            )
            removed.delete()
        for origin in origins:
            origin.origin = origin_normalize(origin.origin)
            origin.save()
            audit_record(
                actor=_staff(request),
                retailer_id=origin.retailer_id,
                entity="origin",
                entity_id=origin.origin,
                action="create",
                after={"origin": origin.origin},
            )

    def _rotate(self, request: HttpRequest, queryset: QuerySet[Retailer], kind: str) -> HttpResponse:
        for retailer in queryset:
            _issued(request).append((retailer, key_rotate(retailer=retailer, kind=kind, actor=_staff(request))))
        return keys_issued_page(request, self)

    @admin.action(permissions=["change"], description="Rotate the secret key (old one valid for the grace period)")
    def rotate_secret_key(self, request: HttpRequest, queryset: QuerySet[Retailer]) -> HttpResponse:
        return self._rotate(request, queryset, ApiKey.Kind.SECRET)

    @admin.action(permissions=["change"], description="Rotate the publishable key (old one valid for the grace period)")
    def rotate_publishable_key(self, request: HttpRequest, queryset: QuerySet[Retailer]) -> HttpResponse:
        return self._rotate(request, queryset, ApiKey.Kind.PUBLISHABLE)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "retailer", "kind", "created_at", "expires_at", "revoked_at")
    list_filter = ("kind",)
    search_fields = ("prefix", "retailer__name")
    readonly_fields = ("retailer", "kind", "prefix", "publishable_value", "created_at", "expires_at", "revoked_at")
    exclude = ("key_hash",)
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are issued from the retailer screen, so the raw value is shown once

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(permissions=["change"], description="Revoke the selected keys now")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            key_revoke(key=key, actor=_staff(request))
        messages.success(request, f"Revoked {queryset.count()} key(s); every process refuses them within seconds.")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "retailer", "entity", "entity_id", "action")
    list_filter = ("entity", "action")
    search_fields = ("actor", "entity_id", "retailer__name", "request_id")
    date_hierarchy = "at"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
