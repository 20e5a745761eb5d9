"""The demo storefront page and its live counts."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from analytics.demo import DEMO_RETAILER
from analytics.services import events_ingest
from analytics.tests.factories import event_row
from app.tenancy.models import ApiKey, Retailer


@pytest.fixture
def demo_retailer(db, settings, tmp_path) -> Retailer:
    settings.DEMO_STOREFRONT = True
    call_command("seed_demo", "--products", "15", "--keys-file", str(tmp_path / "keys.json"), stdout=StringIO())
    return Retailer.objects.get(name=DEMO_RETAILER)


def test_the_page_shows_products_prices_and_the_insert_with_the_demo_key(client, demo_retailer):
    response = client.get("/demo/")
    assert response.status_code == 200
    page = response.content.decode()
    key = ApiKey.objects.filter(retailer=demo_retailer, kind="pk", expires_at__isnull=True).latest("created_at")
    assert f'<script src="http://testserver/v1/js/storefabric.js" data-key="{key.publishable_value}" async>' in page
    assert page.count('data-sf-sku="DEMO-') == 12
    assert '<html lang="en-US">' in page


def test_live_counts_answer_cors_only_for_the_demo_origins(client, demo_retailer):
    events_ingest(retailer_id=demo_retailer.id, rows=[event_row(sku="DEMO-00001")], received_at=timezone.now())
    allowed = demo_retailer.origins.first().origin
    body = client.get("/demo/counts", HTTP_ORIGIN=allowed)
    assert body.json()["totals"]["product_view"] == 1
    assert body["Access-Control-Allow-Origin"] == allowed
    assert "Access-Control-Allow-Origin" not in client.get("/demo/counts", HTTP_ORIGIN="https://evil.example")


def test_the_demo_is_off_unless_enabled(client, demo_retailer, settings):
    settings.DEMO_STOREFRONT = False
    assert client.get("/demo/").status_code == 404
    assert client.get("/demo/counts").json()["error"]["code"] == "not_found"
