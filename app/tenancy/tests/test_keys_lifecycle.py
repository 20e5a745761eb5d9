"""Key creation, rotation with a grace period, revocation and the create_retailer command."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from app.tenancy.models import ApiKey, AuditEntry
from app.tenancy.services import retailer_create


@pytest.mark.django_db
def test_create_retailer_prints_one_json_object_with_both_keys() -> None:
    out = StringIO()
    call_command("create_retailer", "Charlie", "--origin", "https://shop.example", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed["retailer"] == "Charlie"
    assert printed["publishable_key"].startswith("pk_")
    assert printed["secret_key"].startswith("sk_")
    assert printed["origins"] == ["https://shop.example"]


@pytest.mark.django_db
def test_keys_are_stored_as_prefix_and_hash_only() -> None:
    _, publishable, secret = retailer_create(name="Dana", origins=[], actor="test")
    stored = ApiKey.objects.get(pk=secret.key.pk)
    assert secret.raw not in (stored.prefix, stored.key_hash, stored.publishable_value)
    assert stored.prefix == secret.raw[:11]
    assert ApiKey.objects.get(pk=publishable.key.pk).publishable_value == publishable.raw


def test_rotation_keeps_the_old_secret_valid_for_the_grace_period(alice, settings) -> None:
    settings.API_KEY_CACHE_TTL = 0
    response = alice.client().post("/v1/keys/rotate", {"kind": "sk"}, format="json")
    assert response.status_code == 201
    new_secret = response.json()["key"]
    assert new_secret.startswith("sk_")
    old_key = ApiKey.objects.get(retailer=alice.retailer, prefix=alice.secret_key[:11])
    assert old_key.expires_at is not None
    assert old_key.expires_at > timezone.now() + timedelta(seconds=settings.KEY_ROTATION_GRACE_SECONDS - 60)
    for raw in (alice.secret_key, new_secret):
        assert alice.client().get("/v1/retailer", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200


def test_old_key_stops_working_after_the_grace_period(alice, settings) -> None:
    settings.API_KEY_CACHE_TTL = 0
    alice.client().post("/v1/keys/rotate", {"kind": "sk"}, format="json")
    ApiKey.objects.filter(prefix=alice.secret_key[:11]).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = alice.client().get("/v1/retailer")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "revoked_key"


def test_revocation_is_honoured_once_the_key_cache_expires(alice, anon_client, settings) -> None:
    settings.API_KEY_CACHE_TTL = 0.2
    by_publishable = f"/v1/retailer?key={alice.publishable_key}"
    assert anon_client.get(by_publishable).json()["error"]["code"] == "secret_key_required"
    assert alice.client().post(f"/v1/keys/{alice.publishable_key[:11]}/revoke").status_code == 200
    time.sleep(0.25)
    response = anon_client.get(by_publishable)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "revoked_key"


def test_key_changes_are_audited(alice) -> None:
    alice.client().post("/v1/keys/rotate", {"kind": "pk"}, format="json")
    rotate = AuditEntry.objects.get(retailer=alice.retailer, entity="api_key", action="rotate")
    assert rotate.actor == f"key:{alice.secret_key[:11]}"
    assert rotate.before == {"expires_at": None}
    assert rotate.after is not None
    assert rotate.after["expires_at"]


def test_rotation_of_an_unknown_kind_is_a_400_naming_the_field(alice) -> None:
    response = alice.client().post("/v1/keys/rotate", {"kind": "xx"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"][0]["field"] == "kind"
