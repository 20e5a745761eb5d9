"""The ingestion benchmark runs end to end (tiny, no targets): the suite keeps it working."""

from __future__ import annotations

import json
import subprocess
import sys

from workers.testing import ROOT, subprocess_env


def test_the_ingest_benchmark_runs_at_a_tiny_size(transactional_db, broker_redis, tmp_path):
    out = tmp_path / "figures.json"
    args = [sys.executable, "bench/ingest_bench.py", "--no-targets", "--no-migrate", "--duration", "0.5"]
    args += ["--rounds", "1", "--connections", "4", "--batches", "10", "--bare-tasks", "20", "--products", "20"]
    args += ["--concurrency", "2"]
    args += ["--json-out", str(out)]
    # far below what the run sends: it passes only if its load comes from many shoppers
    env = subprocess_env({"DJANGO_SETTINGS_MODULE": "app.settings", "RATE_LIMIT_PER_CLIENT_PER_MINUTE": "10"})

    finished = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)

    assert finished.returncode == 0, finished.stdout + finished.stderr
    figures = json.loads(out.read_text())
    assert figures["worker"]["events"] == 10 * 50
    assert figures["api"]["api"]["rps"] > 0
    assert figures["api"]["bare"]["rps"] > 0
    assert figures["worker"]["bare_tasks_per_s"] > 0
    assert set(figures["ratios"]) == {"processed_vs_bare_task", "api_events_vs_bare_view"}
