"""/v1/rules by the owner: a change or delete is audited and repriced; bad parameters write nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from app.tenancy.keys import key_prefix
from app.tenancy.models import AuditEntry
from pricing.models import PriceSnapshot, RepricingJob, Rule
from pricing.tests.conftest import product_put, shards_run_all
from workers.models import OutboxMessage

SCARCE = {"scarce_at_or_below": 5, "scarcity_raise_percent": "10"}


@pytest.fixture
def scoped_rule(alice) -> dict[str, Any]:
    """Alice sells A-1, A-2 and A-3 at 100.00 with 1 unit each; a scarcity rule covers A-1 only."""
    for sku in ("A-1", "A-2", "A-3"):
        product_put(alice, sku, base_price="100.00", inventory=1)
    body = {"kind": "inventory", "name": "Scarce", "skus": ["A-1"], "params": SCARCE}
    created = alice.client().post("/v1/rules", body, format="json")
    assert created.status_code == 202, created.content
    shards_run_all()
    assert prices() == {"A-1": Decimal("110.00"), "A-2": Decimal("100.00"), "A-3": Decimal("100.00")}
    return created.json()["rule"]


def prices() -> dict[str, Decimal]:
    return dict(PriceSnapshot.objects.order_by("sku").values_list("sku", "effective_price"))


def written() -> tuple[int, ...]:
    """Row counts of everything a rule change writes."""
    return tuple(model.objects.count() for model in (Rule, RepricingJob, AuditEntry, OutboxMessage))


def test_owner_patch_changes_the_rule_audits_it_and_reprices_old_and_new_skus(alice, scoped_rule) -> None:
    url = f"/v1/rules/{scoped_rule['id']}"
    changes = {"name": "Scarcer", "skus": ["A-2"], "params": {**SCARCE, "scarcity_raise_percent": "20"}}

    response = alice.client().patch(url, changes, format="json")

    assert response.status_code == 202, response.content
    job = response.json()["job"]
    assert response["Location"] == job["url"]
    assert job["skus_total"] == 2  # A-1 leaves the rule, A-2 joins it: both are repriced, A-3 is not
    rule = alice.client().get(url).json()
    assert (rule["name"], rule["skus"], rule["params"]["scarcity_raise_percent"]) == ("Scarcer", ["A-2"], "20")
    entry = AuditEntry.objects.get(entity="rule", entity_id=str(scoped_rule["id"]), action="update")
    assert entry.actor == f"key:{key_prefix(alice.secret_key)}"
    assert (entry.before["skus"], entry.after["skus"]) == (["A-1"], ["A-2"])
    assert RepricingJob.objects.get(pk=job["id"]).reason.startswith(f"rule {scoped_rule['id']} updated by key:")
    shards_run_all()
    assert prices() == {"A-1": Decimal("100.00"), "A-2": Decimal("120.00"), "A-3": Decimal("100.00")}


def test_owner_delete_removes_the_rule_audits_it_and_reprices(alice, scoped_rule) -> None:
    url = f"/v1/rules/{scoped_rule['id']}"

    response = alice.client().delete(url)

    assert response.status_code == 202, response.content
    job = response.json()
    assert response["Location"] == job["url"]
    assert job["skus_total"] == 1  # the SKUs the rule covered, not the catalog
    assert alice.client().get(url).status_code == 404
    assert alice.client().get("/v1/rules").json() == []
    entry = AuditEntry.objects.get(entity="rule", entity_id=str(scoped_rule["id"]), action="delete")
    assert entry.actor == f"key:{key_prefix(alice.secret_key)}"
    assert (entry.before["name"], entry.after) == ("Scarce", None)
    assert RepricingJob.objects.get(pk=job["id"]).reason.startswith(f"rule {scoped_rule['id']} deleted by key:")
    shards_run_all()
    assert prices() == {"A-1": Decimal("100.00"), "A-2": Decimal("100.00"), "A-3": Decimal("100.00")}


BAD_PARAMS = [
    ("demand", {"sensitivity": "lots"}, "params.sensitivity"),
    ("demand", {"min_multiplier": "0.9", "max_multiplier": "1", "boost": "2"}, "params.boost"),
    ("inventory", {"scarce_at_or_below": "many", "scarcity_raise_percent": "5"}, "params.scarce_at_or_below"),
    (
        "inventory",
        {**SCARCE, "overstock_at_or_above": 5, "overstock_cut_percent": "5"},
        "params.overstock_at_or_above",
    ),
    ("competitor", {"mode": "beat"}, "params.mode"),
    ("competitor", {"mode": "match", "undercut_percent": "1"}, "params.undercut_percent"),
    ("schedule", {"windows": []}, "params.windows"),
    (
        "schedule",
        {"windows": [{"days": ["mon"], "start": "18:00", "end": "25:00", "adjust_percent": "5"}]},
        "params.windows[0].end",
    ),
    ("experiment", {"key": "has space", "variants": []}, "params.key"),
    (
        "experiment",
        {"key": "spring", "variants": [{"name": "A", "weight": 1}, {"name": "B", "weight": 0}]},
        "params.variants[1].weight",
    ),
]


@pytest.mark.parametrize(("kind", "params", "field"), BAD_PARAMS)
def test_bad_params_are_a_400_naming_the_field_and_write_nothing(alice, kind, params, field) -> None:
    before = written()

    response = alice.client().post("/v1/rules", {"kind": kind, "name": "Bad", "params": params}, format="json")

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert [row["field"] for row in error["details"]] == [field]
    assert written() == before


def test_a_patch_with_bad_params_leaves_the_rule_as_it_was(alice, scoped_rule) -> None:
    url = f"/v1/rules/{scoped_rule['id']}"
    before = written()

    response = alice.client().patch(url, {"params": {**SCARCE, "scarcity_raise_percent": "500"}}, format="json")

    assert response.status_code == 400, response.content
    assert [row["field"] for row in response.json()["error"]["details"]] == ["params.scarcity_raise_percent"]
    assert written() == before
    assert alice.client().get(url).json()["params"] == scoped_rule["params"]
