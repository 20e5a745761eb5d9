"""Forged events move live prices only so far: per-client and per-session demand budgets, a
demand age limit, and the default policy's daily change limit. The counts stay exact."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client, override_settings

from analytics.demand_caps import EXEMPT, WeighedEvent, weights_assign
from analytics.models import DemandUsage, RawEvent, SkuMinuteCount
from analytics.services import events_ingest
from analytics.tests.factories import batch_body, event_json, event_row, ingest_as_it_happened
from analytics.tests.probes import CHROME_UA, wait_ingested, wait_refreshed
from pricing.models import DemandSignal, PriceSnapshot
from pricing.services import policy_update, product_upsert, rule_create

SKU = "FORGED-1"
CAP = 40  # ANALYTICS_DEMAND_CAP_PER_SOURCE's default
HOUR = datetime(2026, 1, 1, 10, tzinfo=UTC)


def demand_input(retailer_id: int, sku: str = SKU) -> int:
    return SkuMinuteCount.objects.filter(retailer_id=retailer_id, sku=sku).aggregate(a=Sum("demand_activity"))["a"] or 0


def purchases_counted(retailer_id: int, sku: str = SKU) -> int:
    return SkuMinuteCount.objects.filter(retailer_id=retailer_id, sku=sku).aggregate(p=Sum("purchase"))["p"] or 0


def post_from(client_address: str, key: str, events: list[dict]) -> dict:
    response = Client().generic(
        "POST",
        f"/v1/events?key={key}",
        batch_body(events),
        content_type="text/plain;charset=UTF-8",
        HTTP_USER_AGENT=CHROME_UA,
        REMOTE_ADDR=client_address,
    )
    assert response.status_code == 202, response.content
    return response.json()


def purchases(count: int, *, session_prefix: str, ts: datetime | None = None) -> list[dict]:
    """Forged purchases, each in a session of its own (a forger invents as many as it likes)."""
    return [
        {**event_json(type="purchase", sku=SKU, ts=ts), "session": f"{session_prefix}-{n}", "quantity": 1}
        for n in range(count)
    ]


def ingest_at_once(retailer_id: int, batches: list[list], now: datetime) -> list[BaseException]:
    """Ingest each batch from a thread of its own, all released together, as client-a; the errors."""
    start = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def ingest(rows: list) -> None:
        try:
            start.wait()
            events_ingest(retailer_id=retailer_id, rows=rows, received_at=now, contributor="client-a")
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=ingest, args=(rows,)) for rows in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize(
    ("bases", "expected"),
    [
        ([20, 20, 20], [20, 20, 0]),  # two purchases fill one client's budget
        ([5, 20, 20], [5, 20, 15]),  # the third gets what is left
        ([1] * 45, [1] * 40 + [0] * 5),  # forty views
    ],
)
def test_an_event_gets_what_is_left_of_its_budgets(bases, expected) -> None:
    events = [WeighedEvent(str(n), SKU, HOUR, ("c:one", f"s:{n}"), base) for n, base in enumerate(bases)]
    assert list(weights_assign(events, {}).values()) == expected


def test_a_session_budget_binds_across_clients_and_what_was_used_before_counts() -> None:
    events = [WeighedEvent(str(n), SKU, HOUR, (f"c:{n}", "s:shared"), 20) for n in range(3)]
    assert list(weights_assign(events, {(SKU, HOUR, "s:shared"): 30}).values()) == [10, 0, 0]


def test_exempt_events_weigh_in_full() -> None:
    events = [WeighedEvent(str(n), SKU, HOUR, (), 20) for n in range(10)]
    assert sum(weights_assign(events, {}).values()) == 200


def test_a_flood_of_forged_purchases_from_one_client_moves_demand_by_at_most_the_cap(
    alice, celery_worker, broker_redis
) -> None:
    """Daily change limit off: the demand input itself is what the bound holds."""
    rid = alice.retailer.id
    policy_update(retailer_id=rid, data={"max_daily_change_percent": None}, actor="test")
    worker = celery_worker(["ingest"], concurrency=2)

    for batch in range(6):  # 300 purchases in 300 sessions, one client address
        post_from("203.0.113.7", alice.publishable_key, purchases(50, session_prefix=f"forger-{batch}"))
    post_from("198.51.100.20", alice.publishable_key, purchases(1, session_prefix="shopper"))
    wait_ingested(worker, batches=7)

    assert purchases_counted(rid) == 301  # every valid event stored and counted
    assert RawEvent.objects.filter(retailer_id=rid, sku=SKU).count() == 301
    assert demand_input(rid) == CAP + 20  # the forger's budget, and the other shopper's purchase
    sources = set(DemandUsage.objects.filter(retailer_id=rid).values_list("source", flat=True))
    assert {source[:2] for source in sources} == {"c:", "s:"}  # client and session budgets were kept
    assert not [source for source in sources if "203.0.113" in source or "198.51.100" in source]  # a keyed hash


@pytest.mark.timeout(120)
def test_with_the_daily_limit_on_a_forged_flood_moves_the_price_by_at_most_the_limit(
    alice, celery_worker, broker_redis
) -> None:
    rid = alice.retailer.id
    rule_create(
        retailer_id=rid,
        kind="demand",
        values={"name": "Demand", "params": {"sensitivity": "1", "min_multiplier": "0.5", "max_multiplier": "3"}},
        actor="test",
    )
    product_upsert(
        retailer_id=rid, sku=SKU, data={"name": "Shoe", "currency": "USD", "base_price": "100.00"}, actor="test"
    )
    ingest_as_it_happened(rid, [event_row(sku=SKU, ts=datetime.now(UTC) - timedelta(days=2))])  # a quiet history
    worker = celery_worker(["ingest"], concurrency=2)

    for client in range(20):  # twenty clients, each up to its budget: the demand signal hits its ceiling
        post_from(f"203.0.113.{client + 1}", alice.publishable_key, purchases(5, session_prefix=f"c{client}"))
    wait_ingested(worker, batches=20)
    wait_refreshed(worker, refreshes=1)

    assert DemandSignal.objects.get(retailer_id=rid, sku=SKU).signal > Decimal(2)  # the rule alone: x3
    assert PriceSnapshot.objects.get(retailer_id=rid, sku=SKU).effective_price == Decimal("120.00")  # +20 % a day


def test_backdated_events_are_counted_but_left_out_of_demand_and_the_answer_says_how_many(
    alice, celery_worker, broker_redis
) -> None:
    rid = alice.retailer.id
    now = datetime.now(UTC)
    events = [event_json(sku=SKU, ts=now - timedelta(hours=6)) for _ in range(3)]
    events += [event_json(sku=SKU, ts=now - timedelta(minutes=1)) for _ in range(2)]
    worker = celery_worker(["ingest"], concurrency=1)

    assert post_from("203.0.113.7", alice.publishable_key, events) == {"accepted": 5, "demand_ignored": 3}
    wait_ingested(worker, batches=1)

    assert SkuMinuteCount.objects.filter(retailer_id=rid, sku=SKU).aggregate(v=Sum("product_view"))["v"] == 5
    assert demand_input(rid) == 2


@override_settings(ANALYTICS_DEMAND_MAX_AGE_SECONDS=3600)
def test_the_demand_age_limit_is_a_setting(alice, celery_worker, broker_redis) -> None:
    now = datetime.now(UTC)
    events = [event_json(sku=SKU, ts=now - timedelta(minutes=minutes)) for minutes in (30, 90)]
    assert post_from("203.0.113.7", alice.publishable_key, events) == {"accepted": 2, "demand_ignored": 1}


@pytest.mark.django_db
def test_secret_key_events_are_exempt_from_the_budgets(alice) -> None:
    rows = [event_row(type="purchase", sku=SKU) for _ in range(10)]
    events_ingest(retailer_id=alice.retailer.id, rows=rows, received_at=datetime.now(UTC), contributor=EXEMPT)
    assert demand_input(alice.retailer.id) == 200
    assert not DemandUsage.objects.exists()


@pytest.mark.django_db
def test_a_redelivered_batch_charges_no_budget_twice(alice) -> None:
    rid, now = alice.retailer.id, datetime.now(UTC)
    rows = [event_row(type="add_to_cart", sku=SKU, ts=now) for _ in range(3)]
    for _ in range(3):
        events_ingest(retailer_id=rid, rows=rows, received_at=now, contributor="client-a")
    assert demand_input(rid) == 15
    client_budget = DemandUsage.objects.get(retailer_id=rid, source="c:client-a")
    assert client_budget.used == 15
    more = [event_row(type="purchase", sku=SKU, ts=now) for _ in range(2)]
    events_ingest(retailer_id=rid, rows=more, received_at=now, contributor="client-a")
    assert demand_input(rid) == CAP  # 15 + 20 + 5: the second purchase got what was left


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_of_one_client_share_one_budget(alice) -> None:
    rid, now = alice.retailer.id, datetime.now(UTC)
    batches = [[event_row(type="purchase", sku=SKU, ts=now) for _ in range(5)] for _ in range(8)]
    assert ingest_at_once(rid, batches, now) == []
    assert purchases_counted(rid) == 40
    assert demand_input(rid) == CAP


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_that_each_fit_the_budget_share_it_and_stop_at_the_cap(alice) -> None:
    """Each batch alone fits (one purchase, 20 of 40), so each first tries the unlocked path:
    together they still stop at the cap, and every purchase is counted."""
    rid, now = alice.retailer.id, datetime.now(UTC)
    batches = [[event_row(type="purchase", sku=SKU, ts=now)] for _ in range(8)]
    assert ingest_at_once(rid, batches, now) == []
    assert purchases_counted(rid) == 8
    assert demand_input(rid) == CAP
    assert DemandUsage.objects.get(retailer_id=rid, source="c:client-a").used == CAP


@pytest.mark.django_db
def test_a_batch_whose_budget_binds_midway_is_weighed_event_by_event_and_counted_once(alice) -> None:
    """The unlocked attempt (every event at full weight) goes past the cap, so it is rolled back
    whole and the batch is weighed against its locked budgets: the weights are those the
    budgets leave, and nothing of the attempt remains."""
    rid, now = alice.retailer.id, datetime.now(UTC)
    rows = [event_row(type=kind, sku=SKU, ts=now) for kind in ("add_to_cart", "purchase", "purchase", "product_view")]
    result = events_ingest(retailer_id=rid, rows=rows, received_at=now, contributor="client-a")
    assert result.inserted == 4
    assert RawEvent.objects.filter(retailer_id=rid).count() == 4
    weights = sorted(RawEvent.objects.filter(retailer_id=rid).values_list("demand_weight", flat=True))
    assert sum(weights) == CAP
    assert demand_input(rid) == CAP
    assert purchases_counted(rid) == 2
    assert DemandUsage.objects.get(retailer_id=rid, source="c:client-a").used == CAP
