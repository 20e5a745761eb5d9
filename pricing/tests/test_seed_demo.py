"""seed_demo: idempotent demo data, fresh keys on every run, keys file for the load tests."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import Client

from app.tenancy.models import Retailer
from pricing.models import PriceSnapshot, Product, RepricingJob, Rule


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_rotates_keys(tmp_path) -> None:
    keys_file = tmp_path / "keys.json"
    call_command(
        "seed_demo", "--retailers", "2", "--products", "120", "--keys-file", str(keys_file), "--rate-limit", "100000"
    )
    first = json.loads(keys_file.read_text())
    call_command("seed_demo", "--retailers", "2", "--products", "120", "--keys-file", str(keys_file))
    second = json.loads(keys_file.read_text())

    retailer = Retailer.objects.get(name="Demo Retailer")
    assert retailer.rate_limit_per_minute == 100000
    assert Product.objects.filter(retailer=retailer).count() == 120
    assert sorted(Rule.objects.filter(retailer=retailer).values_list("kind", flat=True)) == sorted(Rule.Kind.values)
    assert PriceSnapshot.objects.filter(retailer=retailer, version__gt=0).count() == 120
    assert not RepricingJob.objects.filter(status=RepricingJob.Status.RUNNING).exists()
    assert first[0]["secret_key"] != second[0]["secret_key"]
    assert [demo["retailer"] for demo in second] == ["Demo Retailer", "Demo Retailer 2"]
    assert Product.objects.count() == 240
    assert len(second[0]["skus"]) == 120
    assert {"http://127.0.0.1:8000", "http://localhost:8000", "http://127.0.0.1:8001"} <= set(
        retailer.origins.values_list("origin", flat=True)
    )

    demo = second[0]
    skus = ",".join(demo["skus"][:12])
    response = Client().get(f"/v1/prices?skus={skus}&key={demo['publishable_key']}", HTTP_ORIGIN=demo["origin"])
    assert response.status_code == 200
    assert len(response.json()["prices"]) == 12
    assert response["Access-Control-Allow-Origin"] == demo["origin"]
