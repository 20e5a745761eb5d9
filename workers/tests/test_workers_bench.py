"""The worker benchmark runs end to end at a tiny size (no target), so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from workers.testing import ROOT, current_database_url


@pytest.mark.timeout(240)
def test_worker_benchmark_runs_and_reports_the_ratio_and_relay_rate(transactional_db, broker_redis, tmp_path):
    out = tmp_path / "bench.json"
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    args = [sys.executable, "bench/workers_bench.py", "--tasks", "40", "--rounds", "1", "--relay-rows", "100"]
    result = subprocess.run(
        [*args, "--no-migrate", "--no-targets", "--json-out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    assert set(summary["rates"]) == {"bare", "reliable", "reliable_db"}
    assert all(rate > 0 for rate in summary["rates"].values())
    assert summary["ratios"]["reliable/bare"] > 0
    assert summary["relay_rows_per_s"] > 0
    assert "reliable/bare" in result.stdout
