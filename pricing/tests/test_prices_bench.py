"""The price benchmark runs end to end at a tiny size (no targets), so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from workers.testing import ROOT, current_database_url

PER_CLIENT_LIMIT = 10
TINY = ["--duration", "0.3", "--rounds", "1", "--connections", "2", "--warmup", "0", "--products", "24"]
TINY += ["--workers", "1", "--threads", "2", "--no-migrate", "--no-targets"]


def bench_env() -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SECURE_SSL_REDIRECT": "1",
        # far below what the run sends: it passes only if its load comes from many shoppers
        "RATE_LIMIT_PER_CLIENT_PER_MINUTE": str(PER_CLIENT_LIMIT),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


@pytest.mark.timeout(180)
def test_price_benchmark_runs_and_reports_ratios(transactional_db, tmp_path) -> None:
    """Its load comes from 10,000 shoppers: the per-client limit refuses none of it."""
    out = tmp_path / "bench.json"
    args = [sys.executable, "bench/prices_bench.py", *TINY]
    result = subprocess.run(
        [*args, "--json-out", str(out)], cwd=ROOT, env=bench_env(), capture_output=True, text=True, timeout=150
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    assert set(summary["ratios"]) == {"b/a", "c/a", "p99_b_half_ms"}
    for name in ("a", "b", "c"):
        assert summary["peak"][name]["requests"] > 0
        assert summary["peak"][name]["errors"] == 0
    assert "b/a" in result.stdout


@pytest.mark.timeout(180)
def test_the_client_limits_mode_pairs_the_limit_on_and_off(transactional_db, tmp_path) -> None:
    out = tmp_path / "bench.json"
    args = [sys.executable, "bench/prices_bench.py", "--client-limits", *TINY, "--json-out", str(out)]
    result = subprocess.run(args, cwd=ROOT, env=bench_env(), capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    assert set(summary["ratios"]) == {"on/off"}
    assert len(summary["paired_ratios"]["on/off"]) == 1
    for name in ("on", "off"):
        assert summary["peak"][name]["requests"] > 0
        assert summary["peak"][name]["errors"] == 0
    assert "on/off" in result.stdout


@pytest.mark.timeout(180)
def test_the_rate_limit_cost_benchmark_runs_and_counts_every_lookup(transactional_db, tmp_path) -> None:
    out = tmp_path / "cost.json"
    args = [sys.executable, "bench/rate_limit_cost.py", "--requests", "20", "--rounds", "1", "--products", "24"]
    args += ["--no-migrate", "--json-out", str(out)]
    env = {**bench_env(), "RATE_LIMIT_PER_CLIENT_PER_MINUTE": "600"}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    assert summary["statuses"] == {"200 OK": 20 * 2 * 2}  # warm-up and measured blocks, on and off
    assert summary["per_client_limit"] == 600
    assert set(summary["per_request"]) == {"on", "off"}
