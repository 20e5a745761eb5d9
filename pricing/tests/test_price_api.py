"""The real-time price API: shapes, CORS, errors, no SQL in steady state, misses, experiments, pause."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from app.redis_client import cache_redis
from app.tenancy.models import Retailer
from pricing.snapshots import snapshot_key
from pricing.tests.conftest import prices_get, product_put, shards_run_all

# Snapshots reach Redis after the commit, as in production: these tests commit.
pytestmark = pytest.mark.django_db(transaction=True)

EXPERIMENT = {
    "kind": "experiment",
    "name": "Test",
    "skus": ["EXP-1"],
    "params": {
        "key": "t1",
        "variants": [{"name": "A", "weight": 1}, {"name": "B", "weight": 1, "adjust_percent": "-10"}],
    },
}


def _code(response) -> str:
    return response.json()["error"]["code"]


def test_one_price_with_cors_for_an_allowed_origin(alice) -> None:
    product_put(alice, "SHOE-1", base_price="19.99")
    response = prices_get(alice, "/SHOE-1")
    assert response.status_code == 200
    assert response.json() == {"sku": "SHOE-1", "price": "19.99", "currency": "USD", "stale": False}
    assert response["Access-Control-Allow-Origin"] == alice.origin
    assert response["Vary"] == "Origin"
    assert response["X-Request-ID"]


def test_batch_answers_prices_and_missing(alice) -> None:
    product_put(alice, "A-1", base_price="10.00")
    product_put(alice, "B-2", base_price="20.00")
    product_put(alice, "GONE", active=False)
    body = prices_get(alice, "?skus=A-1,NOPE,B-2,GONE,A-1").json()
    assert [(p["sku"], p["price"]) for p in body["prices"]] == [("A-1", "10.00"), ("B-2", "20.00")]
    assert body["missing"] == ["NOPE", "GONE"]


def test_secret_key_and_no_origin_are_accepted(alice) -> None:
    product_put(alice, "A-1")
    assert alice.client().get("/v1/prices/A-1").status_code == 200
    response = Client().get(f"/v1/prices/A-1?key={alice.publishable_key}")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("/NOPE", 404, "unknown_sku"),
        ("/bad$sku", 400, "invalid_sku"),
        ("?skus=", 400, "too_many_skus"),
        ("?skus=" + ",".join(f"S{n}" for n in range(101)), 400, "too_many_skus"),
        ("?skus=A-1,bad sku", 400, "invalid_sku"),
        ("?skus=A-1&visitor=" + "v" * 129, 400, "malformed_request"),
    ],
)
def test_bad_requests_are_clear_4xx_with_cors(alice, query, status, code) -> None:
    product_put(alice, "A-1")
    response = prices_get(alice, query)
    assert response.status_code == status
    assert _code(response) == code
    assert response["Access-Control-Allow-Origin"] == alice.origin


def test_hundred_skus_is_the_limit(alice) -> None:
    response = prices_get(alice, "?skus=" + ",".join(f"S{n}" for n in range(100)))
    assert response.status_code == 200
    assert len(response.json()["missing"]) == 100


def test_wrong_origin_is_403_without_cors_headers(alice) -> None:
    product_put(alice, "A-1")
    response = prices_get(alice, "/A-1", origin="https://evil.example")
    assert response.status_code == 403
    assert _code(response) == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response
    assert response["Vary"] == "Origin"


def test_secret_key_in_url_and_unknown_key(alice) -> None:
    assert _code(Client().get(f"/v1/prices/A-1?key={alice.secret_key}")) == "secret_key_in_url"
    assert Client().get("/v1/prices/A-1?key=pk_unknown").status_code == 401
    assert Client().get("/v1/prices/A-1").status_code == 401
    assert Client().post(f"/v1/prices/A-1?key={alice.publishable_key}").status_code == 405


def test_steady_state_touches_no_sql(alice) -> None:
    for n in range(12):
        product_put(alice, f"P-{n}")
    query = "?skus=" + ",".join(f"P-{n}" for n in range(12)) + ",UNKNOWN"
    prices_get(alice, query)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            body = prices_get(alice, query).json()
            single = prices_get(alice, "/P-1")
    assert len(body["prices"]) == 12
    assert single.status_code == 200
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_evicted_snapshot_is_read_from_postgres_and_written_back(alice) -> None:
    product_put(alice, "A-1", base_price="12.34")
    cache_redis().flushdb()
    with CaptureQueriesContext(connection) as refill:
        assert prices_get(alice, "/A-1").json()["price"] == "12.34"
    assert len(refill) > 0
    with CaptureQueriesContext(connection) as steady:
        assert prices_get(alice, "/A-1").json()["price"] == "12.34"
    assert len(steady) == 0


def test_unknown_sku_is_cached_as_a_miss_until_the_product_appears(alice) -> None:
    assert prices_get(alice, "/LATER").status_code == 404
    with CaptureQueriesContext(connection) as queries:
        assert prices_get(alice, "/LATER").status_code == 404
    assert len(queries) == 0
    product_put(alice, "LATER", base_price="5.00")
    assert prices_get(alice, "/LATER").json()["price"] == "5.00"


def test_deactivated_product_is_answered_as_missing(alice) -> None:
    product_put(alice, "A-1")
    assert prices_get(alice, "/A-1").status_code == 200
    product_put(alice, "A-1", active=False)
    assert prices_get(alice, "/A-1").status_code == 404
    product_put(alice, "A-1", active=True)
    assert prices_get(alice, "/A-1").status_code == 200


def test_product_priced_before_any_snapshot_is_computed_on_first_request(alice) -> None:
    alice.client().post(
        "/v1/products/bulk", {"products": [{"sku": "NEW-1", "name": "n", "base_price": "7.00"}]}, format="json"
    )
    response = prices_get(alice, "/NEW-1")
    assert response.status_code == 200
    assert response.json()["price"] == "7.00"


def test_explain_shows_the_steps(alice) -> None:
    product_put(alice, "A-1", base_price="100.00", inventory=1)
    alice.client().post(
        "/v1/rules",
        {"kind": "inventory", "name": "Scarce", "params": {"scarce_at_or_below": 3, "scarcity_raise_percent": "10"}},
        format="json",
    )
    shards_run_all()
    body = alice.client().get("/v1/prices/A-1?explain=1").json()  # a secret key: see test_explain_access.py
    assert body["price"] == "110.00"
    assert [(s["step"], s["price"]) for s in body["steps"]] == [("base", "100.00"), ("inventory", "110.00")]
    assert "steps" not in prices_get(alice, "/A-1").json()


def test_experiment_variant_is_deterministic_per_visitor(alice) -> None:
    product_put(alice, "EXP-1", base_price="100.00")
    product_put(alice, "PLAIN", base_price="50.00")
    alice.client().post("/v1/rules", EXPERIMENT, format="json")
    shards_run_all()
    seen = {}
    for visitor in (f"v{n}" for n in range(40)):
        body = prices_get(alice, f"?skus=EXP-1,PLAIN&visitor={visitor}").json()
        experiment, plain = body["prices"]
        assert "variant" not in plain
        assert {"A": "100.00", "B": "90.00"}[experiment["variant"]] == experiment["price"]
        seen[visitor] = experiment["variant"]
        assert prices_get(alice, f"/EXP-1?visitor={visitor}").json()["variant"] == experiment["variant"]
    assert set(seen.values()) == {"A", "B"}


def test_pause_answers_base_prices_at_once_and_resume_restores_rules(alice, short_key_cache) -> None:
    product_put(alice, "A-1", base_price="100.00", inventory=1)
    alice.client().post(
        "/v1/rules",
        {"kind": "inventory", "name": "Scarce", "params": {"scarce_at_or_below": 3, "scarcity_raise_percent": "10"}},
        format="json",
    )
    shards_run_all()
    assert prices_get(alice, "/A-1").json()["price"] == "110.00"
    paused = alice.client().post("/v1/pricing/pause").json()
    assert paused["pricing_paused"] is True
    assert Retailer.objects.get(pk=alice.retailer.pk).pricing_paused
    assert prices_get(alice, "/A-1").json()["price"] == "100.00"
    alice.client().post("/v1/pricing/resume")
    assert prices_get(alice, "/A-1").json()["price"] == "110.00"


def test_rate_limit_is_429_with_retry_after(alice) -> None:
    Retailer.objects.filter(pk=alice.retailer.pk).update(rate_limit_per_minute=3)
    product_put(alice, "A-1")
    statuses = [prices_get(alice, "/A-1").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = prices_get(alice, "/A-1")
    assert _code(limited) == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60


@pytest.mark.parametrize("cached", [b"000000000001{not json", b'000000000001{"old": "format"}', b"garbage"])
def test_an_unreadable_cached_copy_is_treated_as_a_miss(alice, cached: bytes) -> None:
    product_put(alice, "SHOE-1", base_price="19.99")

    cache_redis().set(snapshot_key(alice.retailer.id, "SHOE-1"), cached)
    response = prices_get(alice, "?skus=SHOE-1")
    assert response.status_code == 200
    assert response.json()["prices"][0]["price"] == "19.99"
    assert prices_get(alice, "/SHOE-1").json()["price"] == "19.99"
