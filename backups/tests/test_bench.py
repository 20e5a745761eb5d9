"""The backup benchmark runs end to end at a tiny size (no targets), so it cannot rot: the
backups on real workers (relay and ``backups`` worker started by the bench), and the RSS
sampler finding each of their processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from workers.testing import ROOT, current_database_url


@pytest.mark.timeout(120)
def test_backup_benchmark_runs_and_reports(transactional_db, tmp_path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "DATABASE_URL": current_database_url()}
    result = subprocess.run(
        [
            sys.executable,
            "bench/backups_bench.py",
            "--files",
            "150",
            "--repeats",
            "1",
            "--no-targets",
            "--json-out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["files"] >= 150
    assert report["rerun_new_chunks"] == 0
    assert report["rerun_bytes_read"] == 0
    assert report["raw_walk_files_per_s"] > 0
    assert report["mode"] == "workers"
    on_workers = report["peak_rss_mb"]["first_backup"]
    assert on_workers["worker_child"]["processes"] == 2  # -c 2, never replaced
    assert on_workers["worker_main"]["max_mb"] > 0
    assert on_workers["relay"]["max_mb"] > 0
    assert on_workers["postgres"]["processes"] >= 2  # the bench's and the workers' connections
    assert set(report["worker_peak_rss_mb"]) == {"worker_main", "worker_child"}
    if isinstance(report["restic"], dict):
        assert report["peak_rss_mb"]["restic_first"]["restic"]["max_mb"] > 0
    else:
        assert "restic is not installed" in report["restic"]
