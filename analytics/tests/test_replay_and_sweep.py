"""Operator tools: re-aggregation from raw events, and the periodic demand sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command

from analytics.models import DemandMark, SkuMinuteCount
from analytics.services import demand_refresh, demand_refresh_marked, demand_refresh_recent, events_ingest
from analytics.services.demand import DEMAND_LOCK_CLASS
from analytics.tests.factories import event_row, ingest_as_it_happened
from pricing.models import DemandSignal
from workers.testing import current_database_url


def signals(retailer_id: int) -> dict[str, Decimal]:
    return dict(DemandSignal.objects.filter(retailer_id=retailer_id).values_list("sku", "signal"))


@pytest.mark.django_db
def test_the_sweep_lets_a_signal_fall_back_when_activity_stops(alice):
    now = datetime.now(UTC)
    # 168 views two days ago (48 hours of history: 3.5 per hour), 3 in the last hour: 3 / 3.5.
    rows = [event_row(sku="A", ts=now - timedelta(days=2, seconds=i)) for i in range(168)]
    rows += [event_row(sku="A", ts=now - timedelta(minutes=30)) for _ in range(3)]
    rows += [event_row(sku="OLD", ts=now - timedelta(hours=3))]
    ingest_as_it_happened(alice.retailer.id, rows)
    assert demand_refresh_marked(retailer_id=alice.retailer.id, now=now) == {
        "A": Decimal("0.8571"),
        "OLD": Decimal("0.0000"),
    }

    assert demand_refresh_recent(now=now) == 1  # OLD's activity left the last hour long ago
    assert signals(alice.retailer.id) == {"A": Decimal("0.8571"), "OLD": Decimal("0.0000")}

    assert demand_refresh_recent(now=now + timedelta(minutes=40)) == 1  # still within the hour + slack
    assert signals(alice.retailer.id)["A"] == Decimal("0.0000")  # the views left the last hour
    assert demand_refresh_recent(now=now + timedelta(hours=2)) == 0


@pytest.mark.django_db
def test_reaggregate_command_rebuilds_counts_and_refuses_purged_ranges(alice):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    events_ingest(
        retailer_id=alice.retailer.id, rows=[event_row(sku="A", ts=now - timedelta(minutes=2))], received_at=now
    )
    SkuMinuteCount.objects.update(product_view=7)
    out = StringIO()

    call_command(
        "reaggregate_events", "--since", (now - timedelta(hours=1)).isoformat(), "--until", now.isoformat(), stdout=out
    )

    assert SkuMinuteCount.objects.get().product_view == 1
    assert "1 counter rows rebuilt" in out.getvalue()
    with pytest.raises(CommandError, match="purged"):
        call_command("reaggregate_events", "--since", "2000-01-01T00:00:00Z", "--until", now.isoformat())
    with pytest.raises(CommandError, match="before"):
        call_command("reaggregate_events", "--since", now.isoformat(), "--until", now.isoformat())


@pytest.mark.django_db
def test_a_signal_is_pushed_only_when_it_moves_by_a_step(alice):
    now = datetime.now(UTC)
    rid = alice.retailer.id
    views = {"product_view": 33_600, "demand_activity": 33_600}  # counters as on-time views write them
    SkuMinuteCount.objects.create(retailer_id=rid, sku="A", minute=now - timedelta(days=7), **views)
    recent = SkuMinuteCount.objects.create(
        retailer_id=rid, sku="A", minute=now.replace(second=0), product_view=200, demand_activity=200
    )
    assert demand_refresh(retailer_id=rid, skus=["A"], now=now) == {"A": Decimal("1.0000")}  # mean 200 an hour

    recent.product_view = recent.demand_activity = 201
    recent.save()
    assert demand_refresh(retailer_id=rid, skus=["A"], now=now) == {}  # 1.0050: less than a step
    assert signals(rid) == {"A": Decimal("1.0000")}

    recent.product_view = recent.demand_activity = 202
    recent.save()
    assert demand_refresh(retailer_id=rid, skus=["A"], now=now) == {"A": Decimal("1.0100")}
    assert signals(rid) == {"A": Decimal("1.0100")}


@pytest.mark.django_db
def test_one_refresh_takes_the_marks_of_several_batches(alice):
    now = datetime.now(UTC)
    rid = alice.retailer.id
    for sku in ("A", "B", "C"):
        events_ingest(retailer_id=rid, rows=[event_row(sku=sku, ts=now), event_row(sku=sku, ts=now)], received_at=now)
    assert DemandMark.objects.filter(retailer_id=rid).count() == 3

    assert demand_refresh_marked(retailer_id=rid, now=now) == dict.fromkeys("ABC", Decimal("1.0000"))
    assert not DemandMark.objects.filter(retailer_id=rid).exists()
    assert demand_refresh_marked(retailer_id=rid, now=now) == {}


@pytest.mark.django_db(transaction=True)
def test_while_another_refresh_runs_a_batch_only_leaves_its_marks(alice):
    now = datetime.now(UTC)
    rid = alice.retailer.id
    with psycopg.connect(current_database_url()) as other:  # another worker, mid-refresh of this retailer
        other.execute("SELECT pg_advisory_xact_lock(%s, %s)", (DEMAND_LOCK_CLASS, rid))
        events_ingest(retailer_id=rid, rows=[event_row(sku="A", ts=now)], received_at=now)

        assert demand_refresh_marked(retailer_id=rid, now=now) == {}
        assert DemandMark.objects.filter(retailer_id=rid).count() == 1  # left for the running refresh
    # the other refresh committed; it (or the next batch) takes the mark
    assert demand_refresh_marked(retailer_id=rid, now=now) == {"A": Decimal("1.0000")}
    assert not DemandMark.objects.filter(retailer_id=rid).exists()
