"""The production default ``BROKER_CONFIG_CHECK=refuse``: a worker and a relay do not start on a
broker that would lose work, and start on a private redis-server configured as the README says."""

from __future__ import annotations

import sys

import pytest
import redis

from workers.testing import ManagedProcess, private_redis_server, subprocess_env

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("faults"), pytest.mark.timeout(120)]


def _production_env(broker_url: str) -> dict[str, str]:
    env = subprocess_env({"CELERY_BROKER_URL": broker_url})
    env.pop("BROKER_CONFIG_CHECK", None)  # the default, as in production
    return env


def _worker(broker_url: str) -> ManagedProcess:
    args = [sys.executable, "-m", "celery", "-A", "app", "worker", "-Q", "email", "-c", "1", "--without-mingle"]
    return ManagedProcess(args, env=_production_env(broker_url), name="celery-worker")


def _relay(broker_url: str) -> ManagedProcess:
    return ManagedProcess([sys.executable, "manage.py", "outbox_relay"], env=_production_env(broker_url), name="relay")


def _refused(process: ManagedProcess, returncode: int = 1) -> list[str]:
    try:
        exited = process.wait(timeout=60)
    finally:
        process.stop(timeout=2)
    assert exited == returncode, process.output()[-2000:]
    return [problem for event in process.events("broker_config_refused") for problem in event["problems"]]


def _started(process: ManagedProcess, ready_line: str) -> None:
    try:
        process.wait_for_output(ready_line, timeout=60)
        assert not process.events("broker_config_problem")
    finally:
        process.stop(timeout=5)


@pytest.mark.django_db(transaction=True)
def test_a_worker_refuses_a_broker_without_append_only_file():
    with private_redis_server() as broker:  # noeviction, but nothing persisted
        assert _refused(_worker(broker.url)) == ["no_append_only"]


@pytest.mark.django_db(transaction=True)
def test_a_relay_refuses_a_broker_that_is_the_cache_instance(settings):
    same_server_other_database = settings.REDIS_URL.rsplit("/", 1)[0] + "/9"
    assert "same_instance_as_cache" in _refused(_relay(same_server_other_database))


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_may_evict_is_refused():
    with private_redis_server(persistent=True) as broker:
        redis.Redis.from_url(broker.url).config_set("maxmemory-policy", "allkeys-lru")
        assert _refused(_relay(broker.url)) == ["eviction_policy"]


@pytest.mark.django_db(transaction=True)
def test_a_worker_and_a_relay_start_on_a_private_broker_configured_right():
    with private_redis_server(persistent=True) as broker:  # noeviction, appendonly yes, own port
        _started(_worker(broker.url), " ready.")
        _started(_relay(broker.url), "outbox_relay_started")


@pytest.mark.django_db(transaction=True)
def test_a_web_process_does_not_start_on_a_broker_without_append_only_file():
    """gunicorn's worker stops at loading the application, and gunicorn with it: a web that
    answers 202 for batches the broker would lose never serves."""
    args = [sys.executable, "-m", "gunicorn", "app.wsgi:application", "--bind", "127.0.0.1:0", "--workers", "1"]
    with private_redis_server() as broker:
        web = ManagedProcess(args, env=_production_env(broker.url), name="gunicorn")
        assert _refused(web, returncode=3) == ["no_append_only"]  # gunicorn: a worker failed to boot
