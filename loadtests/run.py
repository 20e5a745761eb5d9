"""Run one scenario headless and give the verdict: ``python -m loadtests.run --scenario step --host …``.

1. checks that the service answers and takes the metrics token, and counts what the analytics
   summary already holds for the run's window (so a run that cannot be judged fails before any load),
2. runs locust (``loadtests/locustfile.py``) with CSV and HTML reports in ``--report-dir``,
3. applies the SLOs of ``slo.toml`` (with ``--set`` overrides) to the CSV and to each stage
   (and, for a soak, compares its windows: ``loadtests/soak.py``),
4. checks that the ingest queue drained and that every event sent in a batch answered 202 was counted
   (``--recheck`` repeats just these checks later, for a backlog that outlived the run),
5. prints the verdict, writes ``verdict.json``, and exits 0 when every check held, 1 when one broke
   (the output names it, e.g. ``price.p99_ms``), 2 when the run itself could not be made.

Every field of :class:`loadtests.options.LoadOptions` is also a flag (``--step-seconds 30``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.catalog import CatalogError, Retailer, retailers_load
from loadtests.checks import NO_AUTH_NOTE, SummaryError, drain_check, events_baseline, events_check
from loadtests.metrics import MetricsError, queue_depth
from loadtests.options import MODES, PREFIX, SCENARIOS, LoadOptions, OptionsError
from loadtests.recorder import RUN_FILE, STEPS_FILE
from loadtests.shapes import PLANS
from loadtests.slo import (
    DEFAULT_SLO_FILE,
    Check,
    SloConfigError,
    request_checks,
    slo_load,
    stage_checks,
    stages_read,
    stats_rows_read,
)
from loadtests.soak import soak_checks

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
CSV_PREFIX = "locust"
EXIT_PASSED, EXIT_BROKEN, EXIT_ERROR = 0, 1, 2
# Locust may take this long beyond the shape's own duration to stop users and write reports.
LOCUST_GRACE_SECONDS = 120
# Stage checks that judge the whole run; the stages' latency checks only locate the knee.
RUN_WIDE_CHECKS = ("loadgen.", "fixed_rate.")


class RunError(Exception):
    """The run cannot be made or judged (exit 2); the message says what to fix."""


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m loadtests.run", description=__doc__.split("\n")[0])
    cli.add_argument("--host", required=True, help="base URL of the Storefabric under test, e.g. http://127.0.0.1:8000")
    cli.add_argument("--slo", type=Path, default=DEFAULT_SLO_FILE, help="SLO file (default: loadtests/slo.toml)")
    cli.add_argument("--set", action="append", default=[], metavar="GROUP.KEY=VALUE", help="override one SLO value")
    cli.add_argument(
        "--recheck",
        action="store_true",
        help="run no load: repeat the drain and event-count checks of the finished run in --report-dir "
        "(valid until other load sends events for the same retailers)",
    )
    for field in fields(LoadOptions):
        flag = "--" + field.name.replace("_", "-")
        kind = type(getattr(LoadOptions, field.name))
        choices = {"scenario": SCENARIOS, "mode": MODES}.get(field.name)
        cli.add_argument(
            flag,
            dest=field.name,
            type=kind,
            choices=choices,
            default=None,
            help=f"default {getattr(LoadOptions, field.name)!s} (or {PREFIX}{field.name.upper()})",
        )
    return cli


def options_resolve(args: argparse.Namespace) -> LoadOptions:
    """``LOADTEST_*`` variables, overridden by flags; the metrics token also from ``METRICS_TOKEN``."""
    environ = {key: value for key, value in os.environ.items() if key.startswith(PREFIX)}
    if "METRICS_TOKEN" in os.environ:
        environ.setdefault(PREFIX + "METRICS_TOKEN", os.environ["METRICS_TOKEN"])
    for field in fields(LoadOptions):
        value = getattr(args, field.name)
        if value is not None:
            environ[PREFIX + field.name.upper()] = str(value)
    if PREFIX + "REPORT_DIR" not in environ:
        options = LoadOptions.from_env(environ)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        environ[PREFIX + "REPORT_DIR"] = str(Path("reports") / f"{options.scenario}-{options.mode}-{stamp}")
    return LoadOptions.from_env(environ)


def metrics_preflight(host: str, token: str, queue: str) -> None:
    """``/metrics`` answers this token and reports the queue: else the drain check could only fail."""
    if not token:
        raise RunError(NO_AUTH_NOTE)
    try:
        queue_depth(host, token, queue)
    except MetricsError as error:
        raise RunError(f"cannot read the {queue} queue's depth from /metrics: {error}") from error


def baseline_read(host: str, retailers: list[Retailer], since: datetime) -> dict[str, int]:
    try:
        return events_baseline(host, retailers, since)
    except (SummaryError, KeyError, TypeError, ValueError) as error:
        raise RunError(f"cannot read the analytics summary before the run: {error}") from error


def locust_run(options: LoadOptions, host: str) -> int:
    """Run locust headless with the scenario's options; its output goes to ``locust.log``."""
    report_dir = options.report_dir
    env = {**os.environ, **options.to_env(), "PYTHONPATH": str(ROOT)}
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--csv",
        str(report_dir / CSV_PREFIX),
        "--html",
        str(report_dir / "report.html"),
        "--only-summary",
        "--exit-code-on-error",
        "0",
        # Users stopping (ramp-down, end of shape) first finish the page view they are in, so no
        # beacon is cut off after the service accepted it but before its 202 was counted here.
        "--stop-timeout",
        f"{round(3 * options.request_timeout_s)}s",
    ]
    timeout = PLANS[options.scenario](options).duration_s + LOCUST_GRACE_SECONDS
    with (report_dir / "locust.log").open("wb") as log:
        try:
            completed = subprocess.run(  # noqa: S603
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise RunError(f"locust did not end within {timeout:g} s; see {report_dir / 'locust.log'}") from error
    return completed.returncode


def stage_table(config: dict[str, Any], stages: list[dict[str, str]]) -> tuple[list[str], dict[str, str] | None]:
    """One line per stage, and the stage with the highest page-view rate at which every SLO held."""
    lines = [
        f"  {'stage':<22}{'retailers':>9}{'pv/s':>9}{'calls/s':>9}{'price p99':>11}{'beacon p99':>12}"
        f"{'fail':>7}{'ingest q':>10}{'locust cpu':>12}  SLOs"
    ]
    best: dict[str, str] | None = None
    for stage in stages:
        checks = stage_checks(config, stage)
        broken = [check.name for check in checks if not check.passed]
        failures = sum(int(stage.get(f"{group}_failures") or 0) for group in config.get("groups", {}))
        lines.append(
            f"  {stage['stage']:<22}{stage['retailers']:>9}{float(stage['page_views_per_s']):>9.1f}"
            f"{float(stage['calls_per_s']):>9.1f}{float(stage['price_p99_ms']):>9.1f}ms"
            f"{float(stage['beacon_p99_ms']):>10.1f}ms{failures:>7}{stage['ingest_depth_max'] or '-':>10}"
            f"{stage['locust_cpu_mean'] or '-':>11}%"
            f"  {'held' if not broken else 'broken: ' + ', '.join(sorted(set(broken)))}"
        )
        if not broken and float(stage["page_views_per_s"]) > float((best or {}).get("page_views_per_s", -1)):
            best = stage
    return lines, best


def verdict_lines(checks: list[Check]) -> list[str]:
    broken = sorted({check.name for check in checks if not check.passed})
    lines = [f"SLO verdict: {'FAILED' if broken else 'PASSED'}", *(check.line() for check in checks)]
    if broken:
        lines.append("Broken thresholds: " + ", ".join(broken))
    return lines


def best_line(best: dict[str, str] | None) -> str:
    if best is None:
        return "No stage held every SLO."
    return (
        f"Highest page-view rate with every SLO held: {float(best['page_views_per_s']):g}/s "
        f"({float(best['calls_per_s']):g} calls/s, stage {best['stage']!r}, locust CPU {best['locust_cpu_mean']}%)"
    )


def end_checks(
    options: LoadOptions, config: dict[str, Any], host: str, run: dict[str, Any], events_window: tuple[Any, ...]
) -> list[Check]:
    """The ingest queue drained, then every event sent in a batch answered 202 was counted."""
    retailers, since, baseline = events_window
    checks = [drain_check(host, options.metrics_token, config["drain"]["queue"], float(config["drain"]["timeout_s"]))]
    checks += events_check(host, retailers, since, baseline, run["events_sent"], float(config["events"]["timeout_s"]))
    if run.get("accepted_mismatches"):
        note = "batches answered 202 with another count"
        checks.append(Check("events.accepted_equals_sent", "beacons", run["accepted_mismatches"], 0, False, note))
    return checks


def recheck(options: LoadOptions, config: dict[str, Any], host: str, retailers: list[Retailer]) -> int:
    """The end checks again, later: did a backlog that outlived the run's timeouts lose anything?"""
    try:
        run = json.loads((options.report_dir / RUN_FILE).read_text())
        window = json.loads((options.report_dir / "verdict.json").read_text())["events_window"]
        since = datetime.fromisoformat(window["since"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RunError(f"{options.report_dir} holds no finished run to recheck: {error}") from error
    metrics_preflight(host, options.metrics_token, config["drain"]["queue"])
    checks = end_checks(options, config, host, run, (retailers, since, window["baseline"]))
    print("\n".join(verdict_lines(checks)))
    return EXIT_BROKEN if any(not check.passed for check in checks) else EXIT_PASSED


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    host = args.host.rstrip("/")
    try:
        options = options_resolve(args)
        config = slo_load(args.slo, args.set)
        retailers = retailers_load(options.keys_file)[: options.max_retailers]
        if args.recheck:
            return recheck(options, config, host, retailers)
        return load_run(options, config, host, retailers)
    except (OptionsError, SloConfigError, CatalogError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


def load_run(options: LoadOptions, config: dict[str, Any], host: str, retailers: list[Retailer]) -> int:
    """Check the service can be judged, run the load, judge it; the verdict's exit code."""
    metrics_preflight(host, options.metrics_token, config["drain"]["queue"])
    # The summary counts per minute and only whole minutes at or after ``since``: start at the minute.
    since = datetime.now(UTC).replace(second=0, microsecond=0)
    baseline = baseline_read(host, retailers, since)
    report_dir = options.report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    print(f"Running {options.scenario} ({options.mode}) against {host}; reports in {report_dir}", flush=True)
    code = locust_run(options, host)
    stats_csv, run_file = report_dir / f"{CSV_PREFIX}_stats.csv", report_dir / RUN_FILE
    if not stats_csv.exists() or not run_file.exists():
        log = (report_dir / "locust.log").read_text(errors="replace")
        raise RunError(f"locust exited {code} without its reports; last output:\n{log[-3000:]}")
    run = json.loads(run_file.read_text())
    stages = stages_read(report_dir / STEPS_FILE)
    checks = request_checks(config, stats_rows_read(stats_csv))
    checks += [c for stage in stages for c in stage_checks(config, stage) if c.name.startswith(RUN_WIDE_CHECKS)]
    if options.scenario == "soak":
        checks += soak_checks(config, stages)
    checks += end_checks(options, config, host, run, (retailers, since, baseline))
    table, best = stage_table(config, stages)
    broken = sorted({check.name for check in checks if not check.passed})
    verdict = {
        "passed": not broken,
        "broken": broken,
        "checks": [c.__dict__ for c in checks],
        "best_stage": best,
        "events_window": {"since": since.isoformat(), "baseline": baseline},
    }
    (report_dir / "verdict.json").write_text(json.dumps(verdict, indent=2))
    text = ["Stages (measured time only):", *table, best_line(best), *verdict_lines(checks)]
    (report_dir / "verdict.txt").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    return EXIT_BROKEN if broken else EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())
