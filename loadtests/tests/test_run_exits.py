"""Exit 2 when a run cannot be made or judged — before any load — and ``--recheck`` against a fake service."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from loadtests import run
from loadtests.recorder import RUN_FILE
from loadtests.tests.conftest import METRICS_TOKEN

SINCE = "2025-01-01T12:00:00+00:00"


@pytest.fixture(autouse=True)
def _no_load(monkeypatch):
    """No test here may start locust, and none reads a token from the shell that runs pytest."""

    def refuse(*args, **kwargs):
        raise AssertionError("locust was started")

    monkeypatch.setattr(run, "locust_run", refuse)
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    monkeypatch.delenv("LOADTEST_METRICS_TOKEN", raising=False)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(host: str, keys: Path, report_dir: Path, *args: str) -> int:
    return run.main(["--host", host, "--keys-file", str(keys), "--report-dir", str(report_dir), *args])


def finished_run(report_dir: Path, sent: dict[str, int], baseline: dict[str, int]) -> Path:
    """The files a finished run leaves for ``--recheck``."""
    report_dir.mkdir()
    (report_dir / RUN_FILE).write_text(json.dumps({"events_sent": sent, "accepted_mismatches": 0}))
    window = {"since": SINCE, "baseline": baseline}
    (report_dir / "verdict.json").write_text(json.dumps({"passed": False, "events_window": window}))
    return report_dir


def test_a_host_that_does_not_answer_exits_2_at_once_saying_so(keys_path, tmp_path, capsys):
    started = time.monotonic()

    code = main(f"http://127.0.0.1:{closed_port()}", keys_path, tmp_path / "r", "--metrics-token", METRICS_TOKEN)

    assert code == run.EXIT_ERROR
    assert time.monotonic() - started < 5
    error = capsys.readouterr().err
    assert "did not answer GET /metrics" in error
    assert "is the service running there?" in error
    assert not (tmp_path / "r").exists()


def test_a_missing_keys_file_exits_2_saying_how_to_make_it(tmp_path, capsys):
    code = main("http://127.0.0.1:9", tmp_path / "absent.json", tmp_path / "r", "--metrics-token", METRICS_TOKEN)

    assert code == run.EXIT_ERROR
    assert "manage.py seed_demo" in capsys.readouterr().err


def test_a_run_without_a_metrics_token_exits_2_before_any_load(keys_path, tmp_path, fake_service_url, capsys):
    code = main(fake_service_url, keys_path, tmp_path / "r")

    assert code == run.EXIT_ERROR
    assert "no metrics token: pass --metrics-token or METRICS_TOKEN" in capsys.readouterr().err


def test_a_refused_metrics_token_exits_2_before_any_load(keys_path, tmp_path, fake_service_url, capsys):
    code = main(fake_service_url, keys_path, tmp_path / "r", "--metrics-token", "stale")

    assert code == run.EXIT_ERROR
    assert "refused the metrics token (401)" in capsys.readouterr().err


def test_recheck_passes_once_the_backlog_is_counted(keys_path, tmp_path, fake_service, fake_service_url, capsys):
    report_dir = finished_run(tmp_path / "r", sent={"Alice": 40, "Bob": 5}, baseline={"Alice": 100, "Bob": 0})
    fake_service.events = {"sk_a": [140], "sk_b": [5]}

    code = main(fake_service_url, keys_path, report_dir, "--recheck", "--metrics-token", METRICS_TOKEN)

    out = capsys.readouterr().out
    assert code == run.EXIT_PASSED, out
    assert out.startswith("SLO verdict: PASSED")
    assert fake_service.paths.count("/metrics") == 2  # the preflight, then the drain check


def test_recheck_names_the_lost_events_and_an_undrained_queue(
    keys_path, tmp_path, fake_service, fake_service_url, capsys
):
    report_dir = finished_run(tmp_path / "r", sent={"Alice": 40, "Bob": 5}, baseline={"Alice": 100, "Bob": 0})
    fake_service.events = {"sk_a": [137], "sk_b": [5]}
    fake_service.depths = [3]
    quick = ["--set", "drain.timeout_s=0", "--set", "events.timeout_s=0"]

    code = main(fake_service_url, keys_path, report_dir, "--recheck", "--metrics-token", METRICS_TOKEN, *quick)

    out = capsys.readouterr().out
    assert code == run.EXIT_BROKEN, out
    assert "Broken thresholds: drain.timeout_s, events.counted_equals_sent" in out
    assert "3 of 40 events not counted" in out
    assert "3 messages still in the queue" in out


def test_recheck_of_a_folder_without_a_finished_run_exits_2(keys_path, tmp_path, fake_service_url, capsys):
    code = main(fake_service_url, keys_path, tmp_path, "--recheck", "--metrics-token", METRICS_TOKEN)

    assert code == run.EXIT_ERROR
    assert "holds no finished run to recheck" in capsys.readouterr().err
