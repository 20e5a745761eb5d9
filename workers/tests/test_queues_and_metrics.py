"""Operating the queues: ``manage.py queues`` and ``GET /metrics`` against a running system."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from workers.testing import wait_until
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

    overview = _queues()

    assert "workers online: 1" in overview
    assert re.search(r"^  test-\w+@", overview, re.MULTILINE)


def test_metrics_need_the_bearer_token():
    anonymous = Client().get("/metrics")
    wrong = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    posted = Client().post("/metrics", **TOKEN)

    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert posted.status_code == 405
    assert wrong.json()["error"]["code"] == "invalid_key"


def test_metrics_add_up_tasks_from_every_pool_process_and_show_the_backlog(celery_worker, effects):
    tasks = 40
    worker = celery_worker(["default"], concurrency=2, include=[fault_tasks.MODULE])
    _park_on_email(3)
    for number in range(tasks):
        fault_tasks.increment.enqueue(idempotency_key=f"m-{number}", sleep_ms=20)
    fault_tasks.rejects_input.enqueue(idempotency_key="m-bad")

    wait_until(lambda: len(effects.applied()) == tasks, timeout=30)
    wait_until(
        lambda: len(worker.events("task_succeeded")) == tasks and worker.events("task_dead_lettered"), timeout=10
    )
    pids = {event.get("pid") for event in worker.events("task_succeeded")}

    def scrape_once_counted() -> str | None:
        text = Client().get("/metrics", **TOKEN).content.decode()
        try:
            counted = _sample(text, "storefabric_tasks_total", task="workers_tests.increment", outcome="succeeded")
        except AssertionError:
            return None
        return text if counted >= tasks else None

    text = wait_until(scrape_once_counted, timeout=5, interval=0.25)  # each process writes once a second

    assert _sample(text, "storefabric_tasks_total", task="workers_tests.increment", outcome="succeeded") == tasks
    assert _sample(text, "storefabric_task_duration_seconds_count", task="workers_tests.increment") == tasks
    assert _sample(text, "storefabric_tasks_total", task="workers_tests.rejects_input", outcome="dead_lettered") == 1
    assert _sample(text, "storefabric_queue_depth", queue="email") == 3
    assert _sample(text, "storefabric_queue_oldest_age_seconds", queue="email") > 0
    assert _sample(text, "storefabric_queue_depth", queue="default") == 0
    assert _sample(text, "storefabric_dead_letters_open") == 1
    assert _sample(text, "storefabric_outbox_backlog", status="pending") == 0
    assert _sample(text, "storefabric_broker_up") == 1
    assert len(pids) == 2  # both pool processes counted into the same totals
