"""GET /v1/analytics/skus/{sku} and /v1/analytics/summary: secret key, windows, conversion per variant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from analytics.tests.factories import event_row, ingest_as_it_happened

NOW = datetime.now(UTC)


def ingest(tenant, rows) -> None:
    ingest_as_it_happened(tenant.retailer.id, rows)


@pytest.fixture
def shop_events(alice, bob):
    ingest(
        alice,
        [
            event_row(type="page_view", ts=NOW),
            *[event_row(sku="A", ts=NOW - timedelta(minutes=5), variant="A") for _ in range(4)],
            *[event_row(sku="A", ts=NOW - timedelta(minutes=5), variant="B") for _ in range(2)],
            event_row(sku="A", type="add_to_cart", ts=NOW - timedelta(minutes=4), variant="B"),
            event_row(sku="A", type="purchase", ts=NOW - timedelta(minutes=3), variant="B", quantity=1, price="9.99"),
            event_row(sku="A", ts=NOW - timedelta(days=2)),  # outside the default 24 h window
            event_row(sku="B", ts=NOW - timedelta(minutes=1)),
        ],
    )
    ingest(bob, [event_row(sku="A", ts=NOW) for _ in range(50)])


def test_sku_counts_for_the_last_24_hours_by_default(alice, shop_events):
    body = alice.client().get("/v1/analytics/skus/A").json()
    assert body["sku"] == "A"
    assert body["counts"] == {"page_view": 0, "product_view": 6, "add_to_cart": 1, "purchase": 1}
    assert body["demand_signal"] == "100.0000"  # 31 in the last hour against 1 view in 48 hours: capped


def test_since_widens_the_window_and_must_be_a_zoned_time(alice, shop_events):
    since = quote((NOW - timedelta(days=3)).isoformat())
    assert alice.client().get(f"/v1/analytics/skus/A?since={since}").json()["counts"]["product_view"] == 7
    assert alice.client().get("/v1/analytics/skus/bad%20sku").json()["error"]["code"] == "invalid_sku"
    for bad in ("yesterday", "2025-01-01T00:00:00", quote("0001-01-01T00:00:00+05:00")):
        response = alice.client().get(f"/v1/analytics/skus/A?since={bad}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_failed"


def test_since_with_any_python_zone_offset_is_read_in_utc(alice, shop_events):
    """PostgreSQL refuses zone offsets past 15:59, which Python accepts up to 23:59."""
    since = quote((NOW - timedelta(days=3)).astimezone(timezone(timedelta(hours=23, minutes=43))).isoformat())
    for path in ("/v1/analytics/skus/A", "/v1/analytics/summary"):
        response = alice.client().get(f"{path}?since={since}")
        assert response.status_code == 200, response.content
    assert alice.client().get(f"/v1/analytics/skus/A?since={since}").json()["counts"]["product_view"] == 7


def test_summary_totals_top_skus_and_conversion_per_variant(alice, shop_events):
    body = alice.client().get("/v1/analytics/summary").json()
    assert body["totals"] == {"page_view": 1, "product_view": 7, "add_to_cart": 1, "purchase": 1}
    assert [(row["sku"], row["activity"]) for row in body["top_skus"]] == [("A", 6 + 5 + 20), ("B", 1)]
    assert body["variants"] == [
        {"variant": "A", "product_views": 4, "purchases": 0, "conversion": "0.0000"},
        {"variant": "B", "product_views": 2, "purchases": 1, "conversion": "0.5000"},
    ]


def test_reads_need_the_secret_key_and_see_only_their_retailer(alice, bob, anon_client, shop_events):
    assert anon_client.get(f"/v1/analytics/summary?key={alice.publishable_key}").status_code == 403
    assert anon_client.get("/v1/analytics/skus/A").status_code == 401
    assert bob.client().get("/v1/analytics/skus/A").json()["counts"]["product_view"] == 50
    assert bob.client().get("/v1/analytics/summary").json()["variants"] == []
