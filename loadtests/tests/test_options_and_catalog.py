"""Options come from LOADTEST_* variables and refuse nonsense; the catalog is skewed like a shop's."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from loadtests.catalog import CatalogError, ZipfSampler, retailers_load
from loadtests.options import LoadOptions, OptionsError


def test_options_read_typed_values_from_the_environment():
    options = LoadOptions.from_env(
        {"LOADTEST_SCENARIO": "spike", "LOADTEST_COHORT": "25", "LOADTEST_THINK_MIN_S": "0.5", "OTHER": "x"}
    )

    assert (options.scenario, options.cohort, options.think_min_s) == ("spike", 25, 0.5)
    assert LoadOptions.from_env(options.to_env()) == options


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        ({"LOADTEST_SCENARIO": "ramp"}, "scenario must be one of"),
        ({"LOADTEST_MODE": "parallel"}, "mode must be one of"),
        ({"LOADTEST_COHORT": "many"}, "LOADTEST_COHORT"),
        ({"LOADTEST_COHORT": "0"}, "cohort must be at least 1"),
        ({"LOADTEST_PRODUCTS_PER_PAGE": "101"}, "1..100"),
        ({"LOADTEST_STEP_SECONDS": "3", "LOADTEST_SETTLE_S": "5"}, "step_seconds must exceed settle_s"),
        ({"LOADTEST_RATE": "0"}, "rate must be positive"),
        ({"LOADTEST_RATE_HEADROOM": "-0.1"}, "rate_headroom must be 0..1"),
    ],
)
def test_options_refuse_values_a_scenario_cannot_use(variables, complaint):
    with pytest.raises(OptionsError, match=complaint):
        LoadOptions.from_env(variables)


def test_zipf_sampler_makes_a_few_skus_hot_and_still_visits_the_tail():
    skus = [f"SKU-{n}" for n in range(10_000)]
    sampler = ZipfSampler(skus, exponent=1.07)
    rng = random.Random(7)

    views = Counter(sampler.one(rng) for _ in range(50_000))

    top_1_percent = sum(views[sku] for sku in skus[:100])
    assert 0.35 < top_1_percent / 50_000 < 0.65
    assert views[skus[0]] > views[skus[10]] > views[skus[1000]]
    assert sum(1 for sku in skus[5000:] if views[sku]) > 500


def test_a_page_gets_distinct_skus_even_from_a_tiny_catalog():
    sampler = ZipfSampler(["A", "B", "C"], exponent=3.0)

    page = sampler.distinct(random.Random(1), 12)

    assert sorted(page) == ["A", "B", "C"]


def test_keys_file_is_read_and_a_missing_one_says_how_to_make_it(tmp_path: Path):
    path = tmp_path / "keys.json"
    row = {"retailer": "Acme", "publishable_key": "pk_1", "secret_key": "sk_1", "origin": "https://a.example"}
    path.write_text(json.dumps([{**row, "skus": ["X-1", "X-2"]}]))

    (retailer,) = retailers_load(path)

    assert (retailer.name, retailer.skus, retailer.index) == ("Acme", ("X-1", "X-2"), 0)
    with pytest.raises(CatalogError, match="seed_demo"):
        retailers_load(tmp_path / "absent.json")
    path.write_text(json.dumps([row]))
    with pytest.raises(CatalogError, match="lacks 'skus'"):
        retailers_load(path)
