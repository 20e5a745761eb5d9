"""Rule writes. Every change is audited and reprices the SKUs it touches through a repricing job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from app.errors import ApiError
from app.tenancy.audit import audit_record, audit_record_many
from pricing.models import RepricingJob, Rule
from pricing.rules.base import ParamsError
from pricing.rules.pipeline import rule_params_validate
from pricing.services.repricing import repricing_job_create
from pricing.skus import invalid_sku, sku_problem, sku_valid

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
        raise invalid_sku([sku_problem(skus[index], field="skus", index=index) for index in bad[:100]])
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


def _reprice(*, retailer_id: int, scopes: list[list[str]], subject: str, actor: str, action: str) -> RepricingJob:
    """One job over the SKUs the rules' scopes cover; an empty scope covers the whole catalog."""
    skus = None if any(not scope for scope in scopes) else sorted(set().union(*scopes))
    return repricing_job_create(retailer_id=retailer_id, skus=skus, reason=f"{subject} {action} by {actor}")


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
        job = _reprice(
            retailer_id=retailer_id, scopes=[rule.skus], subject=f"rule {rule.id}", actor=actor, action="created"
        )
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
        job = _reprice(
            retailer_id=retailer_id,
            scopes=[rule.skus, before["skus"]],
            subject=f"rule {rule.id}",
            actor=actor,
            action="updated",
        )
    return RuleChange(rule=rule, job=job)


def rule_delete(*, retailer_id: int, rule_id: int, actor: str) -> RepricingJob:
    """Delete a rule (404 for another retailer's rule) and reprice what it covered."""
    return rules_delete(retailer_id=retailer_id, rule_ids=[rule_id], actor=actor)


def rules_delete(*, retailer_id: int, rule_ids: list[int], actor: str) -> RepricingJob:
    """Delete some of a retailer's rules in one transaction, one audit row each, and reprice
    what they covered with one job. All or nothing: 404 if any is missing or another retailer's.
    """
    wanted = sorted(set(rule_ids))
    with transaction.atomic():
        rules = list(Rule.objects.select_for_update().filter(retailer_id=retailer_id, pk__in=wanted).order_by("pk"))
        missing = sorted(set(wanted) - {rule.pk for rule in rules})
        if missing:
            raise ApiError("not_found", f"No rule {missing[0]}.")
        befores = [(str(rule.pk), rule_json(rule)) for rule in rules]
        Rule.objects.filter(pk__in=wanted).delete()
        audit_record_many(
            actor=actor,
            retailer_id=retailer_id,
            entity="rule",
            changes=[(rule_id, "delete", before, None) for rule_id, before in befores],
        )
        subject = f"rule {wanted[0]}" if len(wanted) == 1 else f"rules {', '.join(map(str, wanted))}"
        return _reprice(
            retailer_id=retailer_id,
            scopes=[before["skus"] for _, before in befores],
            subject=subject,
            actor=actor,
            action="deleted",
        )
