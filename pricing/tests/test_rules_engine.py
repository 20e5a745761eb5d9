"""Every rule kind, guardrail and rounding mode, with exact Decimal expectations (pure engine, no I/O)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.rules.base import PricingInputs, RuleSpec
from pricing.rules.experiment import variant_for
from pricing.rules.guardrails import PolicySpec
from pricing.rules.pipeline import price_compute, rule_params_validate

D = Decimal
MONDAY_NOON = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def inputs(**overrides: object) -> PricingInputs:
    base = PricingInputs(
        sku="SKU-1",
        currency="USD",
        base_price=D("100.00"),
        cost=None,
        list_price=None,
        inventory=None,
        demand_signal=D("1.0000"),
        competitor_price=None,
        now_local=MONDAY_NOON,
        anchor_price=None,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def rule(kind: str, params: dict, rule_id: int = 1, skus: frozenset[str] = frozenset()) -> RuleSpec:
    return RuleSpec(rule_id, kind, kind, rule_params_validate(kind, params), skus)


def price(given_inputs: PricingInputs, *rules: RuleSpec, policy: PolicySpec | None = None) -> Decimal:
    return price_compute(inputs=given_inputs, rules=list(rules), policy=policy or PolicySpec()).default_price


def steps(given_inputs: PricingInputs, *rules: RuleSpec, policy: PolicySpec | None = None) -> list[str]:
    computed = price_compute(inputs=given_inputs, rules=list(rules), policy=policy or PolicySpec())
    return [step["step"] for step in computed.steps[computed.default_variant]]


DEMAND = {"sensitivity": "0.5", "min_multiplier": "0.8", "max_multiplier": "1.3"}


@pytest.mark.parametrize(
    ("signal", "expected"),
    [("1.0000", "100.00"), ("1.5000", "125.00"), ("1.2345", "111.73"), ("3.0000", "130.00"), ("0.0000", "80.00")],
)
def test_demand_multiplier_follows_signal_within_bounds(signal: str, expected: str) -> None:
    assert price(inputs(demand_signal=D(signal)), rule("demand", DEMAND)) == D(expected)


INVENTORY = {
    "scarce_at_or_below": 5,
    "scarcity_raise_percent": "5",
    "overstock_at_or_above": 500,
    "overstock_cut_percent": "12.5",
}


@pytest.mark.parametrize(
    ("units", "expected"),
    [(0, "105.00"), (5, "105.00"), (6, "100.00"), (499, "100.00"), (500, "87.50"), (None, "100.00")],
)
def test_inventory_raises_when_scarce_and_cuts_when_overstocked(units: int | None, expected: str) -> None:
    assert price(inputs(inventory=units), rule("inventory", INVENTORY)) == D(expected)


@pytest.mark.parametrize(
    ("params", "competitor", "expected"),
    [
        ({"mode": "match"}, "95.00", "95.00"),
        ({"mode": "undercut", "undercut_percent": "1"}, "95.00", "94.05"),
        ({"mode": "match", "max_decrease_percent": "10"}, "50.00", "90.00"),
        ({"mode": "match"}, "120.00", "100.00"),
        ({"mode": "match", "max_increase_percent": "5"}, "120.00", "105.00"),
        ({"mode": "match"}, None, "100.00"),
    ],
)
def test_competitor_match_or_undercut_within_bounds(params: dict, competitor: str | None, expected: str) -> None:
    given_inputs = inputs(competitor_price=D(competitor) if competitor else None)
    assert price(given_inputs, rule("competitor", params)) == D(expected)


BERLIN = ZoneInfo("Europe/Berlin")
FRIDAY_EVENINGS = {"windows": [{"days": ["fri"], "start": "18:00", "end": "22:00", "adjust_percent": "-10"}]}


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (datetime(2025, 1, 10, 17, 59, tzinfo=BERLIN), "100.00"),
        (datetime(2025, 1, 10, 18, 0, tzinfo=BERLIN), "90.00"),
        (datetime(2025, 1, 10, 21, 59, tzinfo=BERLIN), "90.00"),
        (datetime(2025, 1, 10, 22, 0, tzinfo=BERLIN), "100.00"),
        (datetime(2025, 1, 11, 19, 0, tzinfo=BERLIN), "100.00"),
    ],
)
def test_schedule_applies_inside_its_window_in_local_time(local: datetime, expected: str) -> None:
    assert price(inputs(now_local=local), rule("schedule", FRIDAY_EVENINGS)) == D(expected)


def test_schedule_snapshot_expires_at_the_next_boundary() -> None:
    monday = datetime(2025, 1, 6, 12, 0, tzinfo=BERLIN)
    computed = price_compute(
        inputs=inputs(now_local=monday), rules=[rule("schedule", FRIDAY_EVENINGS)], policy=PolicySpec()
    )
    assert computed.valid_until == datetime(2025, 1, 10, 18, 0, tzinfo=BERLIN)
    inside = datetime(2025, 1, 10, 19, 0, tzinfo=BERLIN)
    computed = price_compute(
        inputs=inputs(now_local=inside), rules=[rule("schedule", FRIDAY_EVENINGS)], policy=PolicySpec()
    )
    assert computed.valid_until == datetime(2025, 1, 10, 22, 0, tzinfo=BERLIN)


EXPERIMENT = {
    "key": "spring",
    "variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50, "adjust_percent": "-5"}],
}


def test_experiment_holds_one_price_per_variant_and_later_rules_apply_to_each() -> None:
    computed = price_compute(
        inputs=inputs(inventory=2),
        rules=[rule("experiment", EXPERIMENT), rule("inventory", INVENTORY, 2)],
        policy=PolicySpec(),
    )
    assert computed.prices == {"A": D("105.00"), "B": D("99.75")}
    assert computed.experiment == {"key": "spring", "variants": [["A", 50], ["B", 50]]}
    assert [s["step"] for s in computed.steps["B"]] == ["base", "experiment", "inventory"]


VISITORS = [f"visitor-{n}" for n in range(5000)]


def within_five_standard_errors(share: float, expected: float) -> bool:
    """A fair split over ``VISITORS`` misses this band about once in 1.7 million experiment keys."""
    return abs(share - expected) < 5 * math.sqrt(expected * (1 - expected) / len(VISITORS))


def test_experiment_bucketing_is_deterministic_and_follows_weights() -> None:
    experiment = {"key": "spring", "variants": [["A", 50], ["B", 30], ["C", 20]]}
    first = [variant_for(experiment, visitor) for visitor in VISITORS]
    assert first == [variant_for(experiment, visitor) for visitor in VISITORS]
    # Pinned: a visitor keeps their price across processes and releases (no per-process hash seed).
    assert "".join(first[:24]) == "ABABACBBBAABAABBAAAABAAA"
    for name, weight in (("A", 0.5), ("B", 0.3), ("C", 0.2)):
        assert within_five_standard_errors(first.count(name) / len(VISITORS), weight), name
    assert variant_for(experiment, None) == "A"


def test_each_experiment_key_buckets_visitors_afresh() -> None:
    spring = {"key": "spring", "variants": [["A", 80], ["B", 20]]}
    summer = {"key": "summer", "variants": [["A", 80], ["B", 20]]}
    same = sum(variant_for(spring, visitor) == variant_for(summer, visitor) for visitor in VISITORS)
    # Independent buckets agree for 0.8² + 0.2² = 68 % of visitors; a key that were ignored, for all.
    assert within_five_standard_errors(same / len(VISITORS), 0.68)


def test_only_the_first_experiment_applies() -> None:
    second = {"key": "second", "variants": [{"name": "X", "weight": 1}, {"name": "Y", "weight": 1}]}
    computed = price_compute(
        inputs=inputs(), rules=[rule("experiment", EXPERIMENT), rule("experiment", second, 2)], policy=PolicySpec()
    )
    assert set(computed.prices) == {"A", "B"}


def test_rule_scoped_to_skus_leaves_others_alone() -> None:
    scoped = rule("inventory", INVENTORY, skus=frozenset({"OTHER"}))
    assert price(inputs(inventory=1), scoped) == D("100.00")
    assert price(inputs(sku="OTHER", inventory=1), scoped) == D("105.00")


def test_floor_is_cost_plus_minimum_margin() -> None:
    given_inputs = inputs(cost=D("80.00"), demand_signal=D("0"))
    policy = PolicySpec(min_margin_percent=D("25"))
    assert price(given_inputs, rule("demand", DEMAND), policy=policy) == D("100.00")
    assert steps(given_inputs, rule("demand", DEMAND), policy=policy) == ["base", "demand", "floor"]


def test_floor_rounds_up_so_the_margin_is_never_shaved() -> None:
    given_inputs = inputs(base_price=D("1.00"), cost=D("1.01"))
    assert price(given_inputs, policy=PolicySpec(min_margin_percent=D("10"))) == D("1.12")


def test_ceiling_is_the_list_price() -> None:
    given_inputs = inputs(list_price=D("110.00"), demand_signal=D("2"))
    assert price(given_inputs, rule("demand", DEMAND)) == D("110.00")
    assert steps(given_inputs, rule("demand", DEMAND)) == ["base", "demand", "ceiling"]


def test_maximum_daily_change_holds_against_the_price_at_start_of_day() -> None:
    policy = PolicySpec(max_daily_change_percent=D("10"))
    up = inputs(anchor_price=D("100.00"), demand_signal=D("2"))
    assert price(up, rule("demand", DEMAND), policy=policy) == D("110.00")
    down = inputs(anchor_price=D("100.00"), demand_signal=D("0"))
    assert price(down, rule("demand", DEMAND), policy=policy) == D("90.00")
    assert price_compute(inputs=down, rules=[rule("demand", DEMAND)], policy=policy).daily_limited


def test_floor_and_ceiling_win_over_the_daily_band() -> None:
    policy = PolicySpec(max_daily_change_percent=D("10"))
    given_inputs = inputs(anchor_price=D("200.00"), list_price=D("120.00"))
    assert price(given_inputs, policy=policy) == D("100.00")


@pytest.mark.parametrize(
    ("step", "ending", "base", "expected"),
    [
        ("1", "0.99", "104.37", "103.99"),
        ("1", "0.99", "104.60", "104.99"),
        ("0.05", "0", "104.37", "104.35"),
        ("0.05", "0", "104.38", "104.40"),
        ("1", "0.99", "103.99", "103.99"),
    ],
)
def test_rounding_to_price_points(step: str, ending: str, base: str, expected: str) -> None:
    policy = PolicySpec(rounding_step=D(step), rounding_ending=D(ending))
    assert price(inputs(base_price=D(base)), policy=policy) == D(expected)


def test_rounding_stays_inside_floor_and_ceiling() -> None:
    policy = PolicySpec(rounding_step=D("1"), rounding_ending=D("0.99"))
    boxed = inputs(base_price=D("104.60"), cost=D("104.50"), list_price=D("104.90"))
    assert price(boxed, policy=policy) == D("104.60")
    above_floor = inputs(base_price=D("104.20"), cost=D("104.10"), list_price=D("200.00"))
    assert price(above_floor, policy=policy) == D("104.99")


@given(
    base=st.decimals(min_value=D("0.01"), max_value=D("10000"), places=2),
    cost=st.decimals(min_value=D("0"), max_value=D("5000"), places=2),
    spread=st.decimals(min_value=D("0"), max_value=D("5000"), places=2),
    signal=st.decimals(min_value=D("0"), max_value=D("5"), places=4),
    step=st.sampled_from([("1", "0.99"), ("0.05", "0"), ("10", "9.95"), ("0.10", "0.09")]),
)
def test_final_price_never_leaves_floor_and_ceiling(base, cost, spread, signal, step) -> None:
    ceiling = cost + spread
    policy = PolicySpec(rounding_step=D(step[0]), rounding_ending=D(step[1]))
    given_inputs = inputs(base_price=base, cost=cost, list_price=ceiling, demand_signal=signal)
    result = price(given_inputs, rule("demand", DEMAND), policy=policy)
    assert cost <= result <= ceiling


@pytest.mark.parametrize(
    ("currency", "base", "signal", "expected"),
    [("JPY", "1000", "1.6667", "1667"), ("USD", "10.00", "1.6667", "16.67"), ("BHD", "1.234", "1.6667", "2.057")],
)
def test_prices_carry_the_currency_exponent(currency: str, base: str, signal: str, expected: str) -> None:
    given_inputs = inputs(currency=currency, base_price=D(base), demand_signal=D(signal))
    result = price(given_inputs, rule("demand", {"sensitivity": "1", "max_multiplier": "2"}))
    assert result == D(expected)
    assert str(result) == expected


def test_charm_rounding_in_yen_and_skipped_when_finer_than_the_currency() -> None:
    yen = inputs(currency="JPY", base_price=D("1333"))
    assert price(yen, policy=PolicySpec(rounding_step=D("100"), rounding_ending=D("80"))) == D("1380")
    computed = price_compute(inputs=yen, rules=[], policy=PolicySpec(rounding_step=D("0.05")))
    assert computed.default_price == D("1333")
    assert computed.steps["_"][-1]["step"] == "rounding"
    assert "skipped" in computed.steps["_"][-1]


def test_every_step_is_recorded_in_order() -> None:
    computed = price_compute(
        inputs=inputs(inventory=2, demand_signal=D("1.2"), competitor_price=D("130.00"), list_price=D("115.00")),
        rules=[
            rule("demand", DEMAND),
            rule("inventory", INVENTORY, 2),
            rule("competitor", {"mode": "match", "max_increase_percent": "20"}, 3),
        ],
        policy=PolicySpec(rounding_step=D("1"), rounding_ending=D("0.99")),
    )
    assert [(s["step"], s["price"]) for s in computed.steps["_"]] == [
        ("base", "100.00"),
        ("demand", "110.00"),
        ("inventory", "115.50"),
        ("competitor", "130.00"),
        ("ceiling", "115.00"),
        ("rounding", "114.99"),
    ]
