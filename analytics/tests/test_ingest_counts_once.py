"""Ingestion stores each event once and counts exactly what it stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Sum

from analytics.demand_caps import EXEMPT, events_weigh
from analytics.models import RawEvent, SkuMinuteCount
from analytics.services import counters_reaggregate, events_ingest, events_purge
from analytics.services.ingest import _ingest_serialized, _weighted_rows, _weights_locked
from analytics.tests.factories import event_row

NOW = datetime.now(UTC).replace(second=30, microsecond=0)


def totals(retailer_id: int) -> dict[str, int]:
    return SkuMinuteCount.objects.filter(retailer_id=retailer_id).aggregate(
        page_view=Sum("page_view"),
        product_view=Sum("product_view"),
        add_to_cart=Sum("add_to_cart"),
        purchase=Sum("purchase"),
        demand_activity=Sum("demand_activity"),
    )


def mixed_batch() -> list[list]:
    return [
        event_row(type="page_view", ts=NOW),
        event_row(sku="A", ts=NOW),
        event_row(sku="A", ts=NOW, variant="b"),
        event_row(sku="A", type="add_to_cart", ts=NOW - timedelta(minutes=3)),
        event_row(sku="B", type="purchase", ts=NOW, quantity=2, price="19.99"),
    ]


@pytest.mark.django_db
def test_a_batch_sent_three_times_is_counted_once(alice):
    rows = mixed_batch()
    results = [events_ingest(retailer_id=alice.retailer.id, rows=rows, received_at=NOW) for _ in range(3)]
    assert [r.inserted for r in results] == [5, 0, 0]
    assert results[0].skus == frozenset({"A", "B"})
    assert totals(alice.retailer.id) == {
        "page_view": 1, "product_view": 2, "add_to_cart": 1, "purchase": 1, "demand_activity": 27
    }  # fmt: skip
    assert RawEvent.objects.count() == 5


@pytest.mark.django_db
def test_counters_are_per_sku_minute_and_variant(alice):
    events_ingest(retailer_id=alice.retailer.id, rows=mixed_batch(), received_at=NOW)
    rows = {
        (c.sku, c.minute, c.variant): (c.page_view, c.product_view, c.add_to_cart, c.purchase)
        for c in SkuMinuteCount.objects.all()
    }
    minute = NOW.replace(second=0)
    assert rows == {
        ("", minute, ""): (1, 0, 0, 0),
        ("A", minute, ""): (0, 1, 0, 0),
        ("A", minute, "b"): (0, 1, 0, 0),
        ("A", minute - timedelta(minutes=3), ""): (0, 0, 1, 0),
        ("B", minute, ""): (0, 0, 0, 1),
    }


@pytest.mark.django_db
def test_duplicate_ids_inside_one_batch_count_once(alice):
    row = event_row(sku="A", ts=NOW)
    assert events_ingest(retailer_id=alice.retailer.id, rows=[row, list(row), list(row)], received_at=NOW).inserted == 1
    assert totals(alice.retailer.id)["product_view"] == 1


@pytest.mark.django_db
def test_the_same_event_id_is_separate_per_retailer(alice, bob):
    row = event_row(sku="A", ts=NOW)
    events_ingest(retailer_id=alice.retailer.id, rows=[row], received_at=NOW)
    events_ingest(retailer_id=bob.retailer.id, rows=[row], received_at=NOW)
    assert totals(alice.retailer.id)["product_view"] == 1
    assert totals(bob.retailer.id)["product_view"] == 1


@pytest.mark.django_db
def test_events_past_the_purge_horizon_are_skipped(alice, settings):
    settings.ANALYTICS_RAW_RETENTION_DAYS = 2
    old = event_row(sku="A", ts=NOW - timedelta(days=3, minutes=1))
    result = events_ingest(retailer_id=alice.retailer.id, rows=[old, event_row(sku="A", ts=NOW)], received_at=NOW)
    assert (result.inserted, result.skipped_too_old) == (1, 1)


@pytest.mark.django_db
def test_single_writer_path_gives_the_same_counts(alice, bob):
    rows = mixed_batch()
    events_ingest(retailer_id=alice.retailer.id, rows=rows, received_at=NOW)
    weighed = events_weigh(sorted(rows), contributor=EXEMPT, received_at=NOW)
    weighted = _weighted_rows(sorted(rows), weighed, _weights_locked(bob.retailer.id, weighed))
    for _ in range(2):
        _ingest_serialized(retailer_id=bob.retailer.id, rows=weighted, contributor=EXEMPT, received_at=NOW)
    assert totals(bob.retailer.id) == totals(alice.retailer.id)
    assert SkuMinuteCount.objects.filter(retailer=bob.retailer).count() == 5


@pytest.mark.django_db
def test_reaggregation_rebuilds_exactly_the_clean_counts(alice, bob):
    events_ingest(retailer_id=alice.retailer.id, rows=mixed_batch(), received_at=NOW)
    events_ingest(retailer_id=bob.retailer.id, rows=mixed_batch(), received_at=NOW)
    clean = {(c.retailer_id, c.sku, c.minute, c.variant, c.product_view) for c in SkuMinuteCount.objects.all()}
    SkuMinuteCount.objects.filter(retailer=alice.retailer).update(product_view=99)  # a bug corrupted them
    SkuMinuteCount.objects.filter(retailer=alice.retailer, sku="B").delete()

    written = counters_reaggregate(
        start=NOW - timedelta(hours=1), end=NOW + timedelta(minutes=1), retailer_id=alice.retailer.id
    )

    assert written == 5
    assert {(c.retailer_id, c.sku, c.minute, c.variant, c.product_view) for c in SkuMinuteCount.objects.all()} == clean


@pytest.mark.django_db
def test_purge_removes_only_what_is_past_the_horizons(alice, settings):
    settings.ANALYTICS_RAW_RETENTION_DAYS = 2
    settings.ANALYTICS_COUNTER_RETENTION_DAYS = 30
    events_ingest(retailer_id=alice.retailer.id, rows=[event_row(sku="A", ts=NOW - timedelta(days=2))], received_at=NOW)
    events_ingest(retailer_id=alice.retailer.id, rows=[event_row(sku="A", ts=NOW)], received_at=NOW)
    SkuMinuteCount.objects.create(retailer=alice.retailer, sku="Z", minute=NOW - timedelta(days=31), product_view=1)

    removed = events_purge(now=NOW + timedelta(days=1, hours=1), slice_size=1)

    assert (removed.raw_events, removed.counters) == (1, 1)
    assert RawEvent.objects.count() == 1
    assert SkuMinuteCount.objects.filter(sku="A").count() == 2
