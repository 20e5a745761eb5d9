"""Request values are taken as the contract types them: what the API fuzz test found accepted.

A JSON number where the contract says string (an amount, a competitor), 0 for a boolean, an
unreadable page size or ``explain`` value: each was silently coerced or ignored; each is a 400.
"""

from __future__ import annotations

import pytest

from pricing.tests.conftest import PRODUCT, prices_get, product_put

RULE = {"kind": "demand", "name": "Demand", "params": {"sensitivity": "0.5", "max_multiplier": "1.3"}}


def _error(response) -> str:
    assert response.status_code == 400, response.content
    return str(response.json()["error"]["code"])


@pytest.mark.parametrize("field", ["base_price", "cost", "list_price"])
def test_an_amount_sent_as_a_json_number_is_a_400(alice, field: str) -> None:
    assert _error(product_put(alice, "SHOE-1", **{field: 100})) == "invalid_decimal"


def test_a_competitor_and_its_price_must_be_strings(alice) -> None:
    product_put(alice, "SHOE-1")
    client = alice.client()
    as_number = client.put("/v1/competitor-prices/SHOE-1", {"competitor": 0, "price": "90.00"}, format="json")
    price_as_number = client.put("/v1/competitor-prices/SHOE-1", {"competitor": "rival", "price": 90}, format="json")
    assert _error(as_number) == "validation_failed"
    assert _error(price_as_number) == "validation_failed"


def test_a_demand_signal_and_a_policy_value_must_be_strings(alice) -> None:
    product_put(alice, "SHOE-1")
    client = alice.client()
    assert _error(client.put("/v1/demand/SHOE-1", {"signal": 1}, format="json")) == "invalid_decimal"
    policy = {"min_margin_percent": "10", "rounding_step": "1", "rounding_ending": 0}
    assert _error(client.put("/v1/pricing/policy", policy, format="json")) == "invalid_decimal"


def test_a_rules_enabled_flag_must_be_a_json_boolean(alice) -> None:
    response = alice.client().post("/v1/rules", {**RULE, "enabled": 0}, format="json", HTTP_IDEMPOTENCY_KEY="r-1")
    assert _error(response) == "validation_failed"


@pytest.mark.parametrize("page_size", ["0", "null", "1001", "-1"])
def test_an_unreadable_page_size_is_a_400_not_the_default(alice, page_size: str) -> None:
    response = alice.client().get(f"/v1/products?page_size={page_size}")
    assert _error(response) == "validation_failed"
    assert response.json()["error"]["details"][0]["field"] == "page_size"


@pytest.mark.parametrize("days", ["0", "366", "x"])
def test_lowest_price_days_out_of_range_is_a_400(alice, days: str) -> None:
    product_put(alice, "SHOE-1")
    assert _error(alice.client().get(f"/v1/products/SHOE-1/lowest-price?days={days}")) == "validation_failed"


def test_explain_other_than_1_is_a_400(alice) -> None:
    product_put(alice, "SHOE-1", **PRODUCT)
    assert prices_get(alice, "/SHOE-1?explain=1").status_code == 200
    assert _error(prices_get(alice, "/SHOE-1?explain=AAA")) == "malformed_request"
