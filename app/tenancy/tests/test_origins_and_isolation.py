"""Allowed origins, and that no key of one retailer reaches another retailer's objects."""

from __future__ import annotations

import pytest

from app.tenancy.models import AllowedOrigin, ApiKey, AuditEntry


def test_origins_are_normalized_and_audited(alice) -> None:
    response = alice.client().post("/v1/origins", {"origin": "HTTPS://Shop2.Example:8443"}, format="json")
    assert response.status_code == 201
    assert response.json() == {"origin": "https://shop2.example:8443"}
    assert AuditEntry.objects.filter(entity="origin", entity_id="https://shop2.example:8443").exists()


@pytest.mark.parametrize("bad", ["shop.example", "ftp://shop.example", "https://shop.example/path", ""])
def test_a_non_origin_is_a_400(alice, bad: str) -> None:
    response = alice.client().post("/v1/origins", {"origin": bad}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_failed"


def test_removing_an_origin_that_is_not_there_is_404(alice) -> None:
    response = alice.client().delete("/v1/origins", {"origin": "https://nowhere.example"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_bob_cannot_revoke_alices_key(alice, bob) -> None:
    response = bob.client().post(f"/v1/keys/{alice.secret_key[:11]}/revoke")
    assert response.status_code == 404
    assert ApiKey.objects.get(prefix=alice.secret_key[:11]).revoked_at is None


def test_bob_cannot_remove_alices_origin(alice, bob) -> None:
    response = bob.client().delete("/v1/origins", {"origin": alice.origin}, format="json")
    assert response.status_code == 404
    assert AllowedOrigin.objects.filter(retailer=alice.retailer, origin=alice.origin).exists()


def test_each_key_sees_only_its_own_retailer(alice, bob) -> None:
    assert alice.client().get("/v1/retailer").json()["name"] == "Alice"
    assert bob.client().get("/v1/retailer").json()["name"] == "Bob"
    assert bob.client().get("/v1/retailer").json()["origins"] == [bob.origin]


def test_an_origin_of_up_to_255_characters_is_kept_and_audited(alice) -> None:
    origin = "https://" + ".".join(["a" * 60] * 4)  # 251 characters: over the audit's old 100
    response = alice.client().post("/v1/origins", {"origin": origin}, format="json")
    assert response.status_code == 201
    assert AuditEntry.objects.filter(entity="origin", entity_id=origin).exists()


@pytest.mark.parametrize("bad", ["http://[9EB]/", "https://shop.example:99999", "https://shop.example?x=1"])
def test_an_origin_urlsplit_cannot_read_is_a_400(alice, bad: str) -> None:
    response = alice.client().post("/v1/origins", {"origin": bad}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_failed"
