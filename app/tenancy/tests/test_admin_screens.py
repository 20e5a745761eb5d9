"""Operators manage retailers and keys in the admin; every change is audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from app.tenancy.models import ApiKey, AuditEntry, Retailer


@pytest.fixture
def operator(db: None) -> Client:
    User.objects.create_superuser("olga", "olga@storefabric.example", "pw-olga-123")
    client = Client()
    client.login(username="olga", password="pw-olga-123")
    return client


def _retailer_form(name: str, origin: str = "") -> dict[str, str]:
    return {
        "name": name,
        "time_zone": "Europe/Berlin",
        "default_currency": "EUR",
        "rate_limit_per_minute": "",
        "created_at_0": "2026-11-25",
        "created_at_1": "10:00:00",
        "origins-TOTAL_FORMS": "1",
        "origins-INITIAL_FORMS": "0",
        "origins-0-origin": origin,
        "keys-TOTAL_FORMS": "0",
        "keys-INITIAL_FORMS": "0",
    }


def test_adding_a_retailer_issues_both_keys_and_shows_them_once(operator: Client) -> None:
    response = operator.post(
        "/admin/tenancy/retailer/add/", _retailer_form("Erin", "HTTPS://Erin.Example"), follow=True
    )
    assert response.status_code == 200
    retailer = Retailer.objects.get(name="Erin")
    shown = " ".join(str(message) for message in response.context["messages"])
    assert "sk_" in shown
    assert "pk_" in shown
    assert set(retailer.keys.values_list("kind", flat=True)) == {"pk", "sk"}
    assert list(retailer.origins.values_list("origin", flat=True)) == ["https://erin.example"]
    assert AuditEntry.objects.filter(retailer=retailer, actor="staff:olga", entity="origin").exists()
    page = operator.get(f"/admin/tenancy/retailer/{retailer.pk}/change/").content.decode()
    secret = next(word for word in shown.split() if word.startswith("sk_"))
    assert secret not in page


def test_revoke_action_revokes_and_audits(operator: Client, alice) -> None:
    key = ApiKey.objects.get(retailer=alice.retailer, kind="sk")
    operator.post("/admin/tenancy/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEntry.objects.filter(entity="api_key", action="revoke", actor="staff:olga").count() == 1


def test_audit_log_is_read_only(operator: Client, alice) -> None:
    entry = AuditEntry.objects.filter(retailer=alice.retailer).first()
    assert entry is not None
    assert operator.get("/admin/tenancy/auditentry/").status_code == 200
    assert operator.get("/admin/tenancy/auditentry/add/").status_code == 403
    response = operator.post(f"/admin/tenancy/auditentry/{entry.pk}/change/", {"actor": "forged"})
    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.actor != "forged"


def test_retailer_changes_record_before_and_after(operator: Client, alice) -> None:
    form = _retailer_form("Alice")
    form.update({"pricing_paused": "on", "origins-TOTAL_FORMS": "0"})
    operator.post(f"/admin/tenancy/retailer/{alice.retailer.pk}/change/", form)
    entry = AuditEntry.objects.get(retailer=alice.retailer, entity="retailer", action="update")
    assert entry.before is not None
    assert entry.after is not None
    assert entry.before["pricing_paused"] is False
    assert entry.after["pricing_paused"] is True
