"""The unknown-key flood benchmark runs end to end at a tiny size, so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from workers.testing import ROOT, current_database_url


@pytest.mark.timeout(180)
def test_key_flood_benchmark_runs_and_reports_memory_sql_and_answers(transactional_db, tmp_path) -> None:
    out = tmp_path / "flood.json"
    env = {
        **os.environ,
        "DATABASE_URL": current_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "AUTH_FAILURES_PER_CLIENT_PER_MINUTE": "5",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    args = [sys.executable, "bench/key_flood_bench.py", "--requests", "200", "--warmup", "10", "--connections", "2"]
    args += ["--workers", "1", "--threads", "2", "--no-migrate", "--json-out", str(out)]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert figures["one"]["requests"] == figures["many"]["requests"] == 200
    assert figures["one"]["statuses"].get("429", 0) > 0  # one client: refused before SQL
    assert set(figures["many"]["statuses"]) == {"401"}  # a client each: every key looked up and refused
    assert figures["many"]["db_transactions"] > figures["one"]["db_transactions"]
    for phase in figures.values():
        assert phase["rss_mb_first"] > 0
        assert "growth" in result.stdout
