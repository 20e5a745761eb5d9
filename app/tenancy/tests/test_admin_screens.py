"""Operators manage retailers and keys in the admin; every change is audited."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.http import HttpResponse
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


def _shown_keys(response: HttpResponse) -> list[str]:
    return [str(raw) for _, _, raw in response.context["issued"]]


def _no_key_in_messages(response: HttpResponse) -> None:
    """No message, in the cookie or queued for the next page, carries a raw key."""
    assert "messages" not in response.cookies or not response.cookies["messages"].value
    queued = [str(message) for message in response.wsgi_request._messages]
    assert not any("sk_" in text or "pk_" in text for text in queued), queued


def test_adding_a_retailer_issues_both_keys_and_shows_them_once(operator: Client) -> None:
    response = operator.post("/admin/tenancy/retailer/add/", _retailer_form("Erin", "HTTPS://Erin.Example"))
    assert response.status_code == 200
    retailer = Retailer.objects.get(name="Erin")
    shown = _shown_keys(response)
    assert sorted(raw[:3] for raw in shown) == ["pk_", "sk_"]
    assert all(raw in response.content.decode() for raw in shown)
    assert "no-store" in response["Cache-Control"]
    _no_key_in_messages(response)
    assert set(retailer.keys.values_list("kind", flat=True)) == {"pk", "sk"}
    assert list(retailer.origins.values_list("origin", flat=True)) == ["https://erin.example"]
    assert AuditEntry.objects.filter(retailer=retailer, actor="staff:olga", entity="origin").exists()
    page = operator.get(f"/admin/tenancy/retailer/{retailer.pk}/change/").content.decode()
    secret = next(raw for raw in shown if raw.startswith("sk_"))
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
    # The pause switch has its own entry, written by the pricing service the admin calls (pricing/admin.py).
    entry = AuditEntry.objects.get(
        retailer=alice.retailer, entity="retailer", action="update", after__pricing_paused=True
    )
    assert entry.before is not None
    assert entry.after is not None
    assert entry.before["pricing_paused"] is False
    assert entry.after["pricing_paused"] is True
    fields = AuditEntry.objects.get(retailer=alice.retailer, entity="retailer", after__time_zone="Europe/Berlin")
    assert fields.before is not None
    assert fields.before["time_zone"] != "Europe/Berlin"


def _csrf_client(username: str) -> Client:
    """A signed-in client that, like a browser, must send the CSRF token the admin gave it."""
    client = Client(enforce_csrf_checks=True)
    client.login(username=username, password=f"pw-{username}-123")
    return client


def _staff_post(client: Client, path: str, data: dict[str, object]) -> HttpResponse:
    client.get(path)  # sets the csrftoken cookie, as opening the page does
    return client.post(path, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


@pytest.fixture
def viewer(db: None) -> Client:
    """Staff with view permissions only on retailers and keys."""
    user = User.objects.create_user("vera", "vera@storefabric.example", "pw-vera-123", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_retailer", "view_apikey"]))
    return _csrf_client("vera")


@pytest.fixture
def csrf_operator(operator: Client) -> Client:
    return _csrf_client("olga")


def test_a_view_only_operator_cannot_rotate_a_secret_key_nor_read_one(viewer: Client, alice) -> None:
    before = set(ApiKey.objects.filter(retailer=alice.retailer).values_list("prefix", "expires_at"))
    response = _staff_post(
        viewer, "/admin/tenancy/retailer/", {"action": "rotate_secret_key", "_selected_action": [alice.retailer.pk]}
    )
    assert "sk_" not in response.content.decode()
    assert set(ApiKey.objects.filter(retailer=alice.retailer).values_list("prefix", "expires_at")) == before
    assert not AuditEntry.objects.filter(entity="api_key", actor="staff:vera").exists()


def test_a_view_only_operator_cannot_revoke_a_key(viewer: Client, alice) -> None:
    key = ApiKey.objects.get(retailer=alice.retailer, kind="sk")
    _staff_post(viewer, "/admin/tenancy/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is None


def test_rotating_shows_the_new_secret_once_on_its_own_page_and_not_in_a_message(csrf_operator: Client, alice) -> None:
    action = {"action": "rotate_secret_key", "_selected_action": [alice.retailer.pk]}
    forged = csrf_operator.post("/admin/tenancy/retailer/", action)  # no CSRF token: another site's form
    assert forged.status_code == 403
    assert ApiKey.objects.filter(retailer=alice.retailer, kind="sk").count() == 1
    response = _staff_post(csrf_operator, "/admin/tenancy/retailer/", action)
    assert response.status_code == 200
    [secret] = _shown_keys(response)
    assert secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    _no_key_in_messages(response)
    assert Client().get("/v1/products", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200
    assert secret not in csrf_operator.get("/admin/tenancy/retailer/").content.decode()
