"""Rule writes. Every change is audited and reprices the SKUs it touches through a repricing job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from app.errors import ApiError
from app.tenancy.audit import audit_record
from pricing.models import RepricingJob, Rule
from pricing.product_fields import sku_valid
from pricing.rules.base import ParamsError
from pricing.rules.pipeline import rule_params_validate
from pricing.services.repricing import repricing_job_create

MAX_RULE_SKUS = 10_000
EDITABLE = ("name", "position", "enabled", "skus", "params")


@dataclass(frozen=True)
class RuleChange:
    rule: Rule
    job: RepricingJob


def rule_json(rule: Rule) -> dict[str, Any]:
    return {
        "kind": rule.kind,
        "name": rule.name,
        "position": rule.position,
        "enabled": rule.enabled,
        "skus": rule.skus,
        "params": rule.params,
    }


def _clean(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    name = values.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise ApiError("validation_failed", "name is a text of 1 to 100 characters.")
    position = values.get("position", 0)
    if isinstance(position, bool) or not isinstance(position, int) or abs(position) > 1_000_000:
        raise ApiError("validation_failed", "position is a whole number.")
    if not isinstance(values.get("enabled", True), bool):
        raise ApiError("validation_failed", "enabled is true or false.")
    skus = values.get("skus") or []
    if not isinstance(skus, list) or len(skus) > MAX_RULE_SKUS:
        raise ApiError("validation_failed", f"skus is a list of at most {MAX_RULE_SKUS} SKUs (empty: all).")
    bad = [index for index, sku in enumerate(skus) if not sku_valid(sku)]
    if bad:
        raise ApiError(
            "invalid_sku",
            details=[
                {"index": index, "field": "skus", "code": "invalid_sku", "message": repr(skus[index])}
                for index in bad[:100]
            ],
        )
    try:
        params = rule_params_validate(kind, values.get("params", {}))
    except ParamsError as error:
        raise ApiError("validation_failed", str(error), details=error.details) from error
    return {
        "name": name.strip(),
        "position": position,
        "enabled": values.get("enabled", True),
        "skus": sorted(set(skus)),
        "params": params,
    }


def _reprice(rule: Rule, *, previous_skus: list[str] | None, actor: str, action: str) -> RepricingJob:
    covered = [rule.skus] if previous_skus is None else [rule.skus, previous_skus]
    skus = None if any(not scope for scope in covered) else sorted(set().union(*covered))
    return repricing_job_create(retailer_id=rule.retailer_id, skus=skus, reason=f"rule {rule.id} {action} by {actor}")


def rule_create(*, retailer_id: int, kind: str, values: dict[str, Any], actor: str) -> RuleChange:
    """Create a rule and reprice the SKUs it covers (all when it names none)."""
    if kind not in Rule.Kind.values:
        raise ApiError("validation_failed", f"kind must be one of {', '.join(Rule.Kind.values)}.")
    cleaned = _clean(kind, values)
    with transaction.atomic():
        rule = Rule.objects.create(retailer_id=retailer_id, kind=kind, **cleaned)
        audit_record(
            actor=actor,
            retailer_id=retailer_id,
            entity="rule",
            entity_id=str(rule.id),
            action="create",
            after=rule_json(rule),
        )
        job = _reprice(rule, previous_skus=None, actor=actor, action="created")
    return RuleChange(rule=rule, job=job)


def rule_update(*, retailer_id: int, rule_id: int, changes: dict[str, Any], actor: str) -> RuleChange:
    """Change some fields of a rule (404 for another retailer's rule) and reprice what it covers."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ApiError("validation_failed", f"{unknown[0]} cannot be changed; editable: {', '.join(EDITABLE)}.")
    with transaction.atomic():
        rule = Rule.objects.select_for_update().filter(retailer_id=retailer_id, pk=rule_id).first()
        if rule is None:
            raise ApiError("not_found", f"No rule {rule_id}.")
        before = rule_json(rule)
        cleaned = _clean(rule.kind, {**before, **changes})
        for name, value in cleaned.items():
            setattr(rule, name, value)
        rule.updated_at = timezone.now()
        rule.save()
        audit_record(
            actor=actor,
            retailer_id=retailer_id,
            entity="rule",
            entity_id=str(rule.id),
            action="update",
            before=before,
            after=rule_json(rule),
        )
        job = _reprice(rule, previous_skus=before["skus"], actor=actor, action="updated")
    return RuleChange(rule=rule, job=job)


def rule_delete(*, retailer_id: int, rule_id: int, actor: str) -> RepricingJob:
    """Delete a rule (404 for another retailer's rule) and reprice what it covered."""
    with transaction.atomic():
        rule = Rule.objects.select_for_update().filter(retailer_id=retailer_id, pk=rule_id).first()
        if rule is None:
            raise ApiError("not_found", f"No rule {rule_id}.")
        before = rule_json(rule)
        rule.delete()
        rule.id = rule_id
        audit_record(
            actor=actor, retailer_id=retailer_id, entity="rule", entity_id=str(rule_id), action="delete", before=before
        )
        return _reprice(rule, previous_skus=before["skus"], actor=actor, action="deleted")
