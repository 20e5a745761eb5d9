"""The capacity chart is drawn from steps.csv files."""

from __future__ import annotations

import csv
from pathlib import Path

from loadtests.chart import chart_draw
from loadtests.recorder import STEPS_FILE


def test_chart_is_a_png_drawn_from_each_runs_steps(tmp_path: Path):
    for mode, slope in (("batched", 1.0), ("per-product", 4.0)):
        run = tmp_path / mode
        run.mkdir()
        with (run / STEPS_FILE).open("w", newline="") as handle:
            writer = csv.DictWriter(
                handle, fieldnames=["stage", "page_views_per_s", "locust_cpu_mean", "price_p99_ms", "beacon_p99_ms"]
            )
            writer.writeheader()
            for step in range(1, 4):
                writer.writerow(
                    {
                        "stage": f"step {step}",
                        "page_views_per_s": 10 * step,
                        "locust_cpu_mean": 5 * step,
                        "price_p99_ms": slope * step,
                        "beacon_p99_ms": 2 * slope * step,
                    }
                )
    out = tmp_path / "chart.png"

    chart_draw([tmp_path / "batched", tmp_path / "per-product"], out)

    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000
