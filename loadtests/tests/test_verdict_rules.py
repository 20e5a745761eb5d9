"""The verdict names the threshold a run broke, from locust's CSV, each stage and /metrics text."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from loadtests.metrics import MetricsError, sample_value
from loadtests.recorder import CPU_SUSTAINED_SAMPLES, Histogram, RunRecorder, Stage, sustained
from loadtests.slo import SloConfigError, request_checks, slo_load, stage_checks, stats_rows_read

HEADER = ["Type", "Name", "Request Count", "Failure Count", "95%", "99%"]


def write_stats(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def test_default_slos_pass_a_fast_clean_run_and_name_each_broken_threshold(tmp_path: Path):
    config = slo_load()
    fast = [
        ["GET", "price:batch", 1000, 0, 9, 20],
        ["POST", "beacon", 1000, 0, 12, 30],
        ["GET", "js", 50, 0, 5, 8],
        ["PAGE", "page", 1000, 0, 15, 40],
        ["", "Aggregated", 3050, 0, 10, 30],
    ]
    slow = [["GET", "price:batch", 1000, 3, 30, 70], *fast[1:]]

    passed = request_checks(config, stats_rows_read(write_stats(tmp_path / "fast.csv", fast)))
    broken = request_checks(config, stats_rows_read(write_stats(tmp_path / "slow.csv", slow)))

    assert all(check.passed for check in passed)
    assert sorted(c.name for c in broken if not c.passed) == ["price.failure_ratio", "price.p95_ms", "price.p99_ms"]


def test_a_required_group_without_requests_breaks_the_run(tmp_path: Path):
    rows = [["GET", "price:batch", 10, 0, 1, 1], ["PAGE", "page", 10, 0, 1, 1], ["GET", "js", 1, 0, 1, 1]]

    checks = request_checks(slo_load(), stats_rows_read(write_stats(tmp_path / "s.csv", rows)))

    assert [check.name for check in checks if not check.passed] == ["beacon.required"]


def test_overrides_change_one_threshold_and_refuse_unknown_names():
    config = slo_load(overrides=["price.p99_ms=0.001", "drain.timeout_s=5", "retailer.required=true"])

    assert config["groups"]["price"]["p99_ms"] == 0.001
    assert config["drain"]["timeout_s"] == 5
    assert config["groups"]["retailer"]["required"] is True
    with pytest.raises(SloConfigError, match="no SLO section or group named 'prices'"):
        slo_load(overrides=["prices.p99_ms=1"])
    with pytest.raises(SloConfigError, match=r"group\.key=value"):
        slo_load(overrides=["price=1"])


def test_a_stage_is_judged_on_its_own_cpu_backlog_and_achieved_rate():
    recorder = RunRecorder(clock=iter([0.0, 0.0, 10.0]).__next__)
    recorder.stage_enter(Stage("ramp", 10, 10, False, 1, target_rate=10))
    recorder.request("page", 20, False)
    recorder.stage_enter(Stage("hold", 10, 10, True, 1, target_rate=10))
    for _ in range(90):
        recorder.request("page", 20, False)
        recorder.request("price:batch", 5, False)
    recorder.cpu_sample(85.0, 50.0)
    recorder.queue_depth_sample(150)
    recorder.stage_enter(None)
    (row,) = recorder.summary()["stages"]  # the ramp was never measured, so it is no stage of the report
    row = {key: str(value) for key, value in row.items()}

    broken = {check.name: check for check in stage_checks(slo_load(), row) if not check.passed}

    assert float(row["page_views_per_s"]) == 9.0
    assert (row["ingest_depth_max"], row["ingest_depth_mean"]) == ("150", "150.0")
    assert set(broken) == {"loadgen.max_cpu_percent", "fixed_rate.min_achieved_ratio", "drain.max_backlog"}
    assert broken["fixed_rate.min_achieved_ratio"].measured == 0.9


def test_a_sustained_stretch_of_locust_cpu_breaks_a_stage_whose_mean_is_under_the_limit():
    recorder = RunRecorder(clock=iter([0.0, 60.0]).__next__)
    recorder.stage_enter(Stage("step 3", 150, 50, True, 3))
    for second in range(60):
        recorder.cpu_sample(95.0 if 20 <= second < 40 else 60.0, 90.0)  # 20 s at 95 %, a mean of 71.7 %
    recorder.stage_enter(None)
    row = {key: str(value) for key, value in recorder.summary()["stages"][0].items()}

    (cpu,) = [check for check in stage_checks(slo_load(), row) if check.name == "loadgen.max_cpu_percent"]

    assert (float(row["locust_cpu_mean"]), float(row["locust_cpu_sustained"])) == (71.7, 95.0)
    assert (cpu.passed, cpu.measured) == (False, 95.0)
    assert "the load generator, not the service, was the limit" in cpu.note


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([99.0] + [50.0] * 30, 54.9),  # one busy second (a GC pause, a cohort spawning) is not sustained
        ([81.0] * 10, 81.0),
        ([40.0, 60.0], 50.0),  # a stage shorter than the run: its mean
    ],
)
def test_sustained_cpu_is_the_highest_mean_of_ten_consecutive_samples(samples, expected):
    assert sustained(samples, CPU_SUSTAINED_SAMPLES) == pytest.approx(expected)


def test_a_report_from_before_the_sustained_column_is_judged_on_its_mean():
    row = {"stage": "step 1", "locust_cpu_mean": "85.0"}

    (cpu,) = stage_checks(slo_load(), row)

    assert (cpu.name, cpu.passed, cpu.measured) == ("loadgen.max_cpu_percent", False, 85.0)


def test_histogram_percentiles_are_exact_to_a_tenth_of_a_millisecond():
    histogram = Histogram()
    for value in range(1, 101):
        histogram.add(value / 10, failed=value == 100)

    assert (histogram.percentile(0.5), histogram.percentile(0.95), histogram.percentile(0.99)) == (5.0, 9.5, 9.9)
    assert (histogram.requests, histogram.failures) == (100, 1)


def test_queue_depth_is_read_from_prometheus_text():
    text = (
        "# HELP storefabric_queue_depth Messages waiting.\n"
        "# TYPE storefabric_queue_depth gauge\n"
        'storefabric_queue_depth{queue="pricing"} 3.0\n'
        'storefabric_queue_depth{queue="ingest"} 17.0\n'
    )

    assert sample_value(text, "storefabric_queue_depth", {"queue": "ingest"}) == 17
    with pytest.raises(MetricsError, match='queue="email"'):
        sample_value(text, "storefabric_queue_depth", {"queue": "email"})
