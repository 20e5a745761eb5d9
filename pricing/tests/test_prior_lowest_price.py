"""The 30-day reference price beside a reduction (EU Omnibus): the lowest price applied in the
30 days BEFORE the current price took effect, never the current (discounted) price itself; per
experiment variant too."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from pricing.models import PriceHistory
from pricing.selectors import price_prior_lowest
from pricing.tests.conftest import daily_limit_off, product_put, shards_run_all

EXPERIMENT = {
    "kind": "experiment",
    "name": "Half the shoppers 10 % off",
    "skus": ["A-1"],
    "params": {
        "key": "omnibus",
        "variants": [{"name": "A", "weight": 1}, {"name": "B", "weight": 1, "adjust_percent": "-10"}],
    },
}


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def history(alice, now):
    """Write a SKU's price history as (days ago, price) pairs, replacing what its creation wrote."""
    product_put(alice, "A-1", base_price="100.00")
    PriceHistory.objects.filter(sku="A-1").delete()

    def write(*changes: tuple[float, str], variant: str = "") -> None:
        for version, (days_ago, price) in enumerate(changes, start=1):
            PriceHistory.objects.create(
                retailer_id=alice.retailer.id,
                sku="A-1",
                variant=variant,
                price=Decimal(price),
                currency="USD",
                version=version,
                reason="test",
                at=now - timedelta(days=days_ago),
            )

    return write


def _reference(alice, now, **options):
    return price_prior_lowest(retailer_id=alice.retailer.id, sku="A-1", now=now, **options)


def test_a_first_discount_answers_the_price_before_it_not_itself(alice, now, history) -> None:
    history((90, "100.00"), (1, "80.00"))
    reference = _reference(alice, now)
    assert (reference.price, reference.lowest_price, reference.reduced) == (Decimal("80.00"), Decimal("100.00"), True)
    assert reference.price_since == now - timedelta(days=1)
    assert reference.since == now - timedelta(days=31)


def test_a_second_discount_within_30_days_answers_the_lowest_before_it_the_first_discount_included(
    alice, now, history
) -> None:
    history((90, "100.00"), (20, "80.00"), (5, "60.00"))
    reference = _reference(alice, now)
    assert (reference.price, reference.lowest_price, reference.reduced) == (Decimal("60.00"), Decimal("80.00"), True)


def test_after_a_price_rise_the_reference_is_the_lowest_before_the_rise_and_no_reduction(alice, now, history) -> None:
    history((90, "100.00"), (20, "80.00"), (3, "120.00"))
    reference = _reference(alice, now)
    assert (reference.price, reference.lowest_price, reference.reduced) == (Decimal("120.00"), Decimal("80.00"), False)


def test_the_price_in_effect_when_the_window_opened_counts_and_older_prices_do_not(alice, now, history) -> None:
    history((90, "50.00"), (45, "100.00"), (20, "95.00"), (1, "90.00"))
    assert _reference(alice, now).lowest_price == Decimal("95.00")  # window: 31 days ago to 1 day ago
    assert _reference(alice, now, days=60).lowest_price == Decimal("50.00")  # opened while 50.00 applied


def test_a_sku_with_less_than_30_days_of_history_is_measured_over_what_it_has(alice, now, history) -> None:
    history((10, "100.00"), (1, "80.00"))
    reference = _reference(alice, now)
    assert (reference.lowest_price, reference.reduced) == (Decimal("100.00"), True)


def test_a_sku_that_never_had_another_price_answers_its_price_and_no_reduction(alice, now, history) -> None:
    history((3, "100.00"))
    reference = _reference(alice, now)
    assert (reference.price, reference.lowest_price, reference.reduced) == (Decimal("100.00"), Decimal("100.00"), False)
    assert _reference(alice, now - timedelta(days=4)) is None


def test_the_api_answers_the_prior_price_of_a_discount_made_through_it(alice) -> None:
    product_put(alice, "A-1", base_price="100.00")
    product_put(alice, "A-1", base_price="80.00")

    body = alice.client().get("/v1/products/A-1/lowest-price").json()

    assert {key: body[key] for key in ("price", "lowest_price", "reduced", "days", "currency", "variant")} == {
        "price": "80.00",
        "lowest_price": "100.00",
        "reduced": True,
        "days": 30,
        "currency": "USD",
        "variant": None,
    }
    assert alice.client().get("/v1/products/A-1/lowest-price?days=0").status_code == 400


def test_experiment_variants_keep_their_own_history_and_reference(alice) -> None:
    daily_limit_off(alice)  # the variants' full moves, beyond the default 20 % a day
    product_put(alice, "A-1", base_price="100.00")
    alice.client().post("/v1/rules", EXPERIMENT, format="json")
    shards_run_all()
    product_put(alice, "A-1", base_price="80.00")

    variant_rows = PriceHistory.objects.filter(sku="A-1", variant="B").order_by("version")
    assert [row.price for row in variant_rows] == [Decimal("90.00"), Decimal("72.00")]
    b = alice.client().get("/v1/products/A-1/lowest-price?variant=B").json()
    assert (b["variant"], b["price"], b["lowest_price"], b["reduced"]) == ("B", "72.00", "90.00", True)
    history_b = alice.client().get("/v1/products/A-1/price-history?variant=B").json()["results"]
    assert [row["price"] for row in history_b] == ["72.00", "90.00"]
    plain = alice.client().get("/v1/products/A-1/lowest-price").json()
    assert (plain["price"], plain["lowest_price"]) == ("80.00", "100.00")
    refused = alice.client().get("/v1/products/A-1/lowest-price?variant=B%0A")
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "malformed_request")


def test_pausing_records_each_variants_shown_price(alice) -> None:
    product_put(alice, "A-1", base_price="100.00")
    alice.client().post("/v1/rules", EXPERIMENT, format="json")
    shards_run_all()

    alice.client().post("/v1/pricing/pause")
    shards_run_all()

    latest_b = PriceHistory.objects.filter(sku="A-1", variant="B").order_by("-version").first()
    assert latest_b.price == Decimal("100.00")  # paused: every variant's shoppers see the base price
    assert PriceHistory.objects.filter(sku="A-1", variant="A").count() == 1  # A's shown price never moved
