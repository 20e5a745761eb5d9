"""Shapes grow, spike, hold and pace as configured, and every one of them ends itself."""

from __future__ import annotations

import pytest

from loadtests.options import LoadOptions
from loadtests.shapes import (
    PLANS,
    FixedRatePlan,
    SoakPlan,
    SpikePlan,
    StepPlan,
    fixed_rate_pace,
    fixed_rate_users,
)


def test_step_growth_adds_one_cohort_per_step_and_ends_after_the_last():
    plan = StepPlan(LoadOptions(step_seconds=10, max_retailers=3, cohort=7, settle_s=2))

    stages = {t: plan.stage_at(t) for t in (0, 1.9, 2, 9.9, 10, 25, 29.9)}

    assert [(s.label, s.shoppers, s.retailers) for s in stages.values() if s] == [
        ("step 1", 7, 1),
        ("step 1", 7, 1),
        ("step 1", 7, 1),
        ("step 1", 7, 1),
        ("step 2", 14, 2),
        ("step 3", 21, 3),
        ("step 3", 21, 3),
    ]
    assert [stages[t].measured for t in (0, 1.9, 2, 10)] == [False, False, True, False]
    assert plan.stage_at(30) is None
    assert plan.duration_s == 30


def test_step_growth_gives_each_cohort_its_own_retailer():
    plan = StepPlan(LoadOptions(max_retailers=3, cohort=5))

    assert [plan.retailer_for(n) for n in (0, 4, 5, 9, 10, 14, 15, 99)] == [0, 0, 1, 1, 2, 2, 2, 2]


def test_spike_multiplies_the_base_then_returns_to_it():
    options = LoadOptions(spike_base_users=10, spike_factor=4, spike_base_s=5, spike_s=3, spike_recover_s=5, settle_s=1)
    plan = SpikePlan(options)

    assert [(plan.stage_at(t).label, plan.stage_at(t).shoppers) for t in (0, 5, 7.9, 8, 12.9)] == [
        ("base", 10),
        ("spike", 40),
        ("spike", 40),
        ("recover", 10),
        ("recover", 10),
    ]
    assert plan.stage_at(13) is None


def test_soak_reports_windows_and_only_the_first_one_waits_to_settle():
    plan = SoakPlan(LoadOptions(soak_users=20, soak_s=700, soak_window_s=300, settle_s=5))

    labels = [plan.stage_at(t).label for t in (0, 299, 300, 600, 699)]

    assert labels == [
        "soak 0:00:00-0:05:00",
        "soak 0:00:00-0:05:00",
        "soak 0:05:00-0:10:00",
        "soak 0:10:00-0:11:40",
        "soak 0:10:00-0:11:40",
    ]
    assert not plan.stage_at(1).measured
    assert plan.stage_at(300).measured
    assert plan.stage_at(700) is None


def test_fixed_rate_runs_enough_paced_users_and_measures_only_the_hold():
    plan = FixedRatePlan(LoadOptions(rate=45, pace_per_user=0.5, ramp_s=10, hold_s=20))

    ramp, hold = plan.stage_at(0), plan.stage_at(10)

    assert ramp.shoppers == hold.shoppers == 99  # 45 / 0.5 = 90 users, and 10 % headroom
    assert (ramp.measured, hold.measured) == (False, True)
    assert hold.target_rate == 45
    assert plan.stage_at(30) is None


@pytest.mark.parametrize(("rate", "pace", "headroom"), [(45, 0.5, 0.1), (50, 0.5, 0.1), (7, 0.3, 0.25), (10, 1, 0)])
def test_fixed_rate_users_aim_at_the_target_each_below_its_pace_with_headroom(rate, pace, headroom):
    options = LoadOptions(rate=rate, pace_per_user=pace, rate_headroom=headroom)

    users, each = fixed_rate_users(options), fixed_rate_pace(options)

    assert users * each == pytest.approx(rate)
    assert each <= pace
    # Each user's period (the time a page may take before that user falls behind) has the headroom.
    assert 1 / each >= (1 + headroom) / pace - 1e-9
    assert users < (rate / pace) * (1 + headroom) + 1


@pytest.mark.parametrize("scenario", sorted(PLANS))
def test_every_shape_ends_itself(scenario):
    options = LoadOptions(scenario=scenario, soak_s=60, soak_window_s=30, hold_s=10, step_seconds=10)
    plan = PLANS[scenario](options)

    assert plan.stage_at(0) is not None
    assert plan.stage_at(plan.duration_s) is None
