"""The suite's serial groups hold: tests marked with one ``xdist_group`` run on one worker.

The fault tests kill workers and stop brokers; ``--dist loadgroup`` keeps them on one
pytest-xdist worker, one after another. pytest 9.2 silently broke that grouping with
pytest-xdist 3.8, so the suite checks it instead of trusting the versions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GROUPED_MODULE = """
import os

import pytest


@pytest.mark.xdist_group("serial")
@pytest.mark.parametrize("number", range(6))
def test_grouped(number):
    with open(os.environ["GROUP_LOG"], "a") as log:
        log.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")


@pytest.mark.parametrize("number", range(6))
def test_free(number):
    pass
"""


def test_tests_of_one_xdist_group_run_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(GROUPED_MODULE)
    log = tmp_path / "workers.log"
    args = ["-n", "2", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider", "-p", "no:django"]
    args += ["--rootdir", str(tmp_path), "-c", "/dev/null", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        env={"GROUP_LOG": str(log), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    workers = log.read_text().split()
    assert len(workers) == 6
    assert len(set(workers)) == 1, json.dumps(workers)
