"""Operating the queues: ``manage.py queues`` and ``GET /metrics`` against a running system."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from workers.testing import ProcessTimeoutError, WebServer, wait_until
from workers.tests import fault_tasks

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = {"HTTP_AUTHORIZATION": "Bearer test-metrics-token"}


def _queues(*args: str) -> str:
    out = StringIO()
    call_command("queues", "--ping-timeout", "1", *args, stdout=out)
    return out.getvalue()


def _park_on_email(count: int) -> None:
    for number in range(count):
        fault_tasks.record.apply_async(kwargs={"idempotency_key": f"parked-{number}"}, queue="email")


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text, whatever the order of its labels."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    raise AssertionError(f"{name} {labels} not in /metrics")


def test_queues_shows_depth_age_and_peeks_without_taking(broker_redis):
    _park_on_email(3)

    overview = _queues()
    peek = _queues("peek", "email")

    assert re.search(r"^email\s+3\s+\d+\.\d$", overview, re.MULTILINE)
    assert re.search(r"^pricing\s+0\s+-$", overview, re.MULTILINE)
    assert '"task": "workers_tests.record"' in peek
    assert "parked-0" in peek
    assert "email" in overview
    assert re.search(r"^email\s+3\s", _queues(), re.MULTILINE)  # peeking took nothing


def test_purge_needs_yes_and_empties_only_that_queue(broker_redis):
    _park_on_email(2)
    fault_tasks.record.enqueue(idempotency_key="keep-me")

    with pytest.raises(CommandError, match="--yes"):
        _queues("purge", "email")
    purged = _queues("purge", "email", "--yes")

    assert "email: purged 2 messages" in purged
    overview = _queues()
    assert re.search(r"^email\s+0\s", overview, re.MULTILINE)
    assert re.search(r"^default\s+1\s", overview, re.MULTILINE)


def test_queues_lists_the_workers_online(celery_worker):
    celery_worker(["default"])

    def with_the_worker_online() -> str | None:
        text = _queues()
        return text if "workers online: 1" in text else None

    # A busy machine can answer the first 1 s ping late; the worker must show up, not at once.
    overview = wait_until(with_the_worker_online, timeout=30)

    assert re.search(r"^  test-\w+@", overview, re.MULTILINE)


def test_metrics_need_the_bearer_token():
    anonymous = Client().get("/metrics")
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    posted = Client().post("/metrics", **TOKEN)

    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert posted.status_code == 405
    assert wrong.json()["error"]["code"] == "invalid_key"


def test_metrics_add_up_tasks_from_every_process_and_every_web_process_reports_the_same(
    celery_worker, web_server, effects
):
    tasks = 40
    webs = [web_server(), web_server()]  # two gunicorn processes, each with its own memory
    worker = celery_worker(["default"], concurrency=2, include=[fault_tasks.MODULE])
    _park_on_email(3)
    for number in range(tasks):
        fault_tasks.increment.enqueue(idempotency_key=f"m-{number}", sleep_ms=20)
    fault_tasks.flaky.enqueue(idempotency_key="m-flaky", failures=2)  # fails twice, retried twice
    fault_tasks.rejects_input.enqueue(idempotency_key="m-bad")  # fails once, dead-lettered

    wait_until(lambda: len(effects.applied()) == tasks + 1, timeout=30)
    wait_until(
        lambda: len(worker.events("task_succeeded")) == tasks + 1 and worker.events("task_dead_lettered"), timeout=10
    )
    pids = {event.get("pid") for event in worker.events("task_succeeded")}
    scrapes = {
        "this process": lambda: Client().get("/metrics", **TOKEN).content.decode(),
        **{f"gunicorn {web.process.pid}": _scraper(web) for web in webs},
    }

    expected = EXPECTED_COUNTERS | {("increment", "succeeded"): tasks}

    def scraped_once_all_counted() -> dict[str, str] | None:
        texts = {source: scrape() for source, scrape in scrapes.items()}
        return texts if all(_counters(text) == expected for text in texts.values()) else None

    with suppress(ProcessTimeoutError):  # each process writes its counts once a second
        wait_until(scraped_once_all_counted, timeout=5, interval=0.25)
    texts = {source: scrape() for source, scrape in scrapes.items()}

    for source, text in texts.items():
        assert _counters(text) == expected, source
        assert _sample(text, "storefabric_task_duration_seconds_count", task="workers_tests.increment") == tasks
        assert _sample(text, "storefabric_queue_depth", queue="email") == 3, source
        assert _sample(text, "storefabric_queue_oldest_age_seconds", queue="email") > 0, source
        assert _sample(text, "storefabric_queue_depth", queue="default") == 0, source
        assert _sample(text, "storefabric_dead_letters_open") == 1, source
        assert _sample(text, "storefabric_outbox_backlog", status="pending") == 0, source
        assert _sample(text, "storefabric_broker_up") == 1, source
    assert len(pids) == 2  # both pool processes counted into the same totals


COUNTED = (
    ("increment", "succeeded"),
    ("flaky", "succeeded"),
    ("flaky", "retried"),
    ("flaky", "failed"),
    ("rejects_input", "failed"),
    ("rejects_input", "dead_lettered"),
)
EXPECTED_COUNTERS = {
    ("flaky", "succeeded"): 1,
    ("flaky", "retried"): 2,
    ("flaky", "failed"): 2,  # every failed run counts, retried or not
    ("rejects_input", "failed"): 1,
    ("rejects_input", "dead_lettered"): 1,
}


def _scraper(web: WebServer) -> Callable[[], str]:
    def scrape() -> str:
        status, text = web.get("/metrics", headers={"Authorization": TOKEN["HTTP_AUTHORIZATION"]})
        assert status == 200, text
        return text

    return scrape


def _counters(text: str) -> dict[tuple[str, str], float]:
    """The ``COUNTED`` task counters of one scrape (0 for one not written yet)."""
    counters = {}
    for task, outcome in COUNTED:
        try:
            counters[task, outcome] = _sample(
                text, "storefabric_tasks_total", task=f"workers_tests.{task}", outcome=outcome
            )
        except AssertionError:
            counters[task, outcome] = 0.0
    return counters
