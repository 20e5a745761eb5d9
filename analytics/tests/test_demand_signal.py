"""The demand signal: last hour's weighted activity against the SKU's trailing hourly mean."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from analytics.demand import COLD_START, MAX_SIGNAL, demand_signal, demand_signals
from analytics.models import SkuMinuteCount

NOW = datetime(2026, 3, 1, 12, 30, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last_hour", "trailing_total", "trailing_hours", "expected"),
    [
        (10, 1680, 168, "1.0000"),  # last hour equals the mean
        (20, 1680, 168, "2.0000"),
        (0, 1680, 168, "0.0000"),
        (1, 3, 1, "0.3333"),
        (2, 3, 1, "0.6667"),  # rounded half up
        (5, 0, 0, "1.0000"),  # cold start
        (10, 10, 400, "168.0000"),  # hours are capped at 168 …
        (10**6, 1, 1, "100.0000"),  # … and the signal at MAX_SIGNAL
    ],
)
def test_signal_formula(last_hour, trailing_total, trailing_hours, expected):
    value = demand_signal(last_hour=last_hour, trailing_total=trailing_total, trailing_hours=trailing_hours)
    assert value == min(Decimal(expected), MAX_SIGNAL)
    assert value.as_tuple().exponent == -4


def count(retailer, sku: str, minute: datetime, **counts: int) -> None:
    """A counter row as ingestion writes it for events received on time (full demand weights)."""
    weights = {"product_view": 1, "add_to_cart": 5, "purchase": 20}
    activity = sum(weights[kind] * number for kind, number in counts.items() if kind in weights)
    SkuMinuteCount.objects.create(
        retailer=retailer, sku=sku, minute=minute.replace(second=0), demand_activity=activity, **counts
    )


@pytest.mark.django_db
def test_signals_weigh_views_carts_and_purchases_over_the_windows(alice):
    r = alice.retailer
    count(r, "A", NOW - timedelta(days=8), product_view=500)  # before the trailing window: ignored
    count(r, "A", NOW - timedelta(days=7), product_view=500)  # first seen in the window: 168 hours of it
    count(r, "A", NOW - timedelta(days=3), product_view=84, add_to_cart=84, purchase=42)  # 84+420+840 = 1344
    count(r, "A", NOW - timedelta(minutes=30), product_view=4, add_to_cart=1, purchase=1)  # 4+5+20 = 29
    count(r, "A", NOW - timedelta(minutes=59), product_view=3, variant="b")  # still inside the last hour
    count(r, "A", NOW - timedelta(minutes=61), product_view=7)  # just outside it: trailing
    count(r, "A", NOW + timedelta(minutes=2), product_view=1000)  # after NOW: ignored

    signals = demand_signals(retailer_id=r.id, skus=["A"], now=NOW)

    # trailing mean = (500 + 1344 + 7) / 168 per hour; last hour = 32
    assert signals["A"] == Decimal("2.9044")
    assert signals["A"] == (Decimal(32) * 168 / Decimal(1851)).quantize(Decimal("0.0001"))


@pytest.mark.django_db
def test_a_young_sku_is_compared_with_its_own_short_history(alice):
    r = alice.retailer
    count(r, "Y", NOW - timedelta(hours=3, minutes=30), product_view=20)  # first seen 2.5 h before the last hour
    count(r, "Y", NOW - timedelta(minutes=10), product_view=10)
    assert demand_signals(retailer_id=r.id, skus=["Y"], now=NOW)["Y"] == Decimal("1.5000")  # 10 / (20 / 3 h)


@pytest.mark.django_db
def test_cold_start_and_unknown_skus_are_normal(alice, bob):
    count(alice.retailer, "NEW", NOW - timedelta(minutes=5), product_view=50)
    count(bob.retailer, "NEW", NOW - timedelta(days=1), product_view=50)  # another retailer's history
    signals = demand_signals(retailer_id=alice.retailer.id, skus=["NEW", "NONE"], now=NOW)
    assert signals == {"NEW": COLD_START, "NONE": COLD_START}


@pytest.mark.django_db
def test_the_portable_query_gives_the_same_windows(alice):
    from analytics.demand import _window_rows_portable, _window_rows_postgresql

    r = alice.retailer
    count(r, "A", NOW - timedelta(days=6), product_view=5, add_to_cart=1)
    count(r, "A", NOW - timedelta(minutes=3), purchase=2, variant="b")
    count(r, "B", NOW - timedelta(minutes=3), product_view=1)
    window = (r.id, ["A", "B", "C"], NOW - timedelta(days=7, hours=1), NOW - timedelta(hours=1), NOW)
    assert sorted(_window_rows_portable(*window)) == sorted(_window_rows_postgresql(*window))
    assert sorted(_window_rows_postgresql(*window))[0][:3] == ("A", 40, 10)
