"""The admin writes products and rules through the services (audited, repriced); the rest is read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from app.tenancy.models import AuditEntry
from pricing.models import PriceHistory, PriceSnapshot, Product, RepricingJob, Rule
from pricing.services import demand_signal_set, rule_create
from pricing.tests.conftest import daily_limit_off, product_put, shards_run_all


@pytest.fixture
def staff(db) -> Client:
    user = User.objects.create(username="ops", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def test_admin_product_add_is_audited_and_priced(staff, alice) -> None:
    form = {
        "retailer": alice.retailer.pk,
        "sku": "ADMIN-1",
        "name": "From the admin",
        "currency": "USD",
        "base_price": "12.50",
        "cost": "",
        "list_price": "",
        "inventory": "",
        "active": "on",
    }
    response = staff.post("/admin/pricing/product/add/", form, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 302, response.content[:2000]
    assert Product.objects.get(sku="ADMIN-1").base_price == 12.5
    assert PriceSnapshot.objects.get(sku="ADMIN-1").effective_price == 12.5
    assert AuditEntry.objects.get(entity="product", entity_id="ADMIN-1").actor == "staff:ops"


def test_admin_refuses_a_floor_above_the_ceiling(staff, alice) -> None:
    form = {
        "retailer": alice.retailer.pk,
        "sku": "ADMIN-2",
        "name": "x",
        "currency": "USD",
        "base_price": "10.00",
        "cost": "20.00",
        "list_price": "15.00",
        "active": "on",
    }
    response = staff.post("/admin/pricing/product/add/", form, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert b"above the list price" in response.content
    assert not Product.objects.exists()


def test_admin_rule_add_starts_a_repricing_job(staff, alice) -> None:
    form = {
        "retailer": alice.retailer.pk,
        "kind": "inventory",
        "name": "Scarce",
        "position": "0",
        "enabled": "on",
        "skus": "[]",
        "params": '{"scarce_at_or_below": 2, "scarcity_raise_percent": "5"}',
    }
    response = staff.post("/admin/pricing/rule/add/", form, HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 302, response.content[:2000]
    rule = Rule.objects.get()
    assert AuditEntry.objects.get(entity="rule", entity_id=str(rule.id)).actor == "staff:ops"
    assert RepricingJob.objects.filter(reason__startswith=f"rule {rule.id} created").exists()
    bad = {**form, "params": '{"scarce_at_or_below": "many"}'}
    assert staff.post("/admin/pricing/rule/add/", bad, HTTP_X_FORWARDED_PROTO="https").status_code == 200
    assert Rule.objects.count() == 1


@pytest.mark.parametrize(
    "model",
    [
        "product",
        "rule",
        "pricingpolicy",
        "pricesnapshot",
        "pricehistory",
        "repricingjob",
        "competitorprice",
        "demandsignal",
    ],
)
def test_admin_lists_open(staff, alice, model) -> None:
    assert staff.get(f"/admin/pricing/{model}/", HTTP_X_FORWARDED_PROTO="https").status_code == 200


def test_admin_delete_selected_is_audited_and_reprices(staff, alice, bob) -> None:
    daily_limit_off(alice)  # the rule's whole effect, beyond the default 20 % a day
    product_put(alice, "A-1", base_price="100.00", inventory=1)
    scarce = {"name": "Scarce", "params": {"scarce_at_or_below": 3, "scarcity_raise_percent": "10"}}
    alices = [rule_create(retailer_id=alice.retailer.id, kind="inventory", values=scarce, actor="test") for _ in "ab"]
    bobs = rule_create(retailer_id=bob.retailer.id, kind="inventory", values=scarce, actor="test")
    kept = rule_create(retailer_id=bob.retailer.id, kind="inventory", values=scarce, actor="test")
    shards_run_all()
    assert PriceSnapshot.objects.get(sku="A-1").effective_price == Decimal("121.00")
    selected = [change.rule.id for change in [*alices, bobs]]

    response = staff.post(
        "/admin/pricing/rule/",
        {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
        HTTP_X_FORWARDED_PROTO="https",
    )

    assert response.status_code == 302, response.content[:2000]
    assert list(Rule.objects.values_list("id", flat=True)) == [kept.rule.id]
    deleted = AuditEntry.objects.filter(entity="rule", action="delete")
    assert sorted(int(entry.entity_id) for entry in deleted) == sorted(selected)
    assert {entry.actor for entry in deleted} == {"staff:ops"}
    assert deleted.get(entity_id=str(bobs.rule.id)).before["params"]["scarcity_raise_percent"] == "10"
    first, second = sorted(selected[:2])
    assert RepricingJob.objects.get(retailer=alice.retailer, reason__contains="deleted").reason == (
        f"rules {first}, {second} deleted by staff:ops"
    )
    assert RepricingJob.objects.filter(
        retailer=bob.retailer, reason=f"rule {bobs.rule.id} deleted by staff:ops"
    ).exists()
    shards_run_all()
    assert PriceSnapshot.objects.get(sku="A-1").effective_price == Decimal("100.00")


def _retailer_change_form(retailer, *, paused: bool) -> dict[str, str]:
    form = {
        "name": retailer.name,
        "time_zone": retailer.time_zone,
        "default_currency": retailer.default_currency,
        "rate_limit_per_minute": "",
        "created_at_0": "2026-11-25",
        "created_at_1": "10:00:00",
        "origins-TOTAL_FORMS": "0",
        "origins-INITIAL_FORMS": "0",
        "keys-TOTAL_FORMS": "0",
        "keys-INITIAL_FORMS": "0",
    }
    if paused:
        form["pricing_paused"] = "on"
    return form


def test_the_admins_pause_switch_records_history_as_the_apis_does(staff, alice) -> None:
    product_put(alice, "A-1", base_price="100.00")
    rule_create(
        retailer_id=alice.retailer.id,
        kind="demand",
        values={"name": "Demand", "params": {"sensitivity": "0.5", "max_multiplier": "1.5"}},
        actor="test",
    )
    shards_run_all()
    demand_signal_set(retailer_id=alice.retailer.id, sku="A-1", signal=Decimal("1.2"), actor="t")
    assert PriceHistory.objects.filter(sku="A-1").order_by("-version").first().price == Decimal("110.00")
    path = f"/admin/tenancy/retailer/{alice.retailer.pk}/change/"

    paused = staff.post(path, _retailer_change_form(alice.retailer, paused=True), HTTP_X_FORWARDED_PROTO="https")
    assert paused.status_code == 302, paused.content[:2000]
    shards_run_all()
    latest = PriceHistory.objects.filter(sku="A-1").order_by("-version").first()
    assert (latest.price, latest.reason) == (Decimal("100.00"), "pricing paused by staff:ops")
    switch_audits = AuditEntry.objects.filter(entity="retailer", action="update", after__pricing_paused=True)
    assert switch_audits.count() == 1

    staff.post(path, _retailer_change_form(alice.retailer, paused=False), HTTP_X_FORWARDED_PROTO="https")
    shards_run_all()
    assert PriceHistory.objects.filter(sku="A-1").order_by("-version").first().price == Decimal("110.00")
