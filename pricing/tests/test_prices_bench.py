"""The price benchmark runs end to end at a tiny size (no targets), so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from workers.testing import ROOT, current_database_url


@pytest.mark.timeout(180)
def test_price_benchmark_runs_and_reports_ratios(transactional_db, tmp_path) -> None:
    out = tmp_path / "bench.json"
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "SECURE_SSL_REDIRECT": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    args = [
        sys.executable,
        "bench/prices_bench.py",
        "--duration",
        "0.3",
        "--rounds",
        "1",
        "--connections",
        "2",
        "--warmup",
        "0",
    ]
    args += ["--products", "24", "--workers", "1", "--threads", "2", "--no-migrate", "--no-targets"]
    result = subprocess.run(
        [*args, "--json-out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=150
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    assert set(summary["ratios"]) == {"b/a", "c/a", "p99_b_half_ms"}
    for name in ("a", "b", "c"):
        assert summary["peak"][name]["requests"] > 0
        assert summary["peak"][name]["errors"] == 0
    assert "b/a" in result.stdout
