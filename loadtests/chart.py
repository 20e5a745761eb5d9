"""Chart p99 latency against page-view rate from the ``steps.csv`` of one or more runs.

``python -m loadtests.chart --out docs/capacity.png reports/step-batched reports/step-per-product``
draws one line per run (labelled by its fan-out mode), stages in order (a line
that turns back means throughput fell under overload), the SLO limits as dashed
lines, and each stage's locust CPU beside its point.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from loadtests.recorder import RUN_FILE, STEPS_FILE
from loadtests.slo import DEFAULT_SLO_FILE, slo_load, stages_read


def run_label(run_dir: Path) -> str:
    run_file = run_dir / RUN_FILE
    if run_file.exists():
        options = json.loads(run_file.read_text()).get("options", {})
        mode, scenario, cohort = options.get("mode", run_dir.name), options.get("scenario", ""), options.get("cohort")
        return f"{mode}, {scenario} of {cohort} shoppers"
    return run_dir.name


def chart_draw(run_dirs: list[Path], out: Path, slo_file: Path = DEFAULT_SLO_FILE) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = slo_load(slo_file)["groups"]
    figure, (price_axis, beacon_axis) = plt.subplots(1, 2, figsize=(12, 4.8), sharex=True)
    for run_dir in run_dirs:
        stages = stages_read(run_dir / STEPS_FILE)
        if not stages:
            raise SystemExit(f"{run_dir / STEPS_FILE} is missing or empty")
        rates = [float(stage["page_views_per_s"]) for stage in stages]
        label = run_label(run_dir)
        for axis, group in ((price_axis, "price"), (beacon_axis, "beacon")):
            p99 = [float(stage[f"{group}_p99_ms"]) for stage in stages]
            axis.plot(rates, p99, marker="o", label=label)
            for rate, latency, stage in zip(rates, p99, stages, strict=True):
                if stage.get("locust_cpu_mean"):
                    axis.annotate(
                        f"{float(stage['locust_cpu_mean']):.0f}%",
                        (rate, latency),
                        fontsize=7,
                        textcoords="offset points",
                        xytext=(4, 4),
                    )
    for axis, group in ((price_axis, "price"), (beacon_axis, "beacon")):
        limit = groups[group].get("p99_ms")
        if limit is not None:
            axis.axhline(float(limit), linestyle="--", color="grey", label=f"SLO p99 ≤ {float(limit):g} ms")
        axis.set_title(f"{group} calls: p99 against load (labels: locust CPU)")
        axis.set_xlabel("page views / s")
        axis.set_ylabel("p99 latency (ms, log scale)")
        axis.set_yscale("log")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(prog="python -m loadtests.chart", description=__doc__.split("\n")[0])
    cli.add_argument("runs", nargs="+", type=Path, help="report directories holding steps.csv")
    cli.add_argument("--out", type=Path, required=True, help="PNG file to write")
    cli.add_argument("--slo", type=Path, default=DEFAULT_SLO_FILE)
    args = cli.parse_args(argv)
    chart_draw(args.runs, args.out, args.slo)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
