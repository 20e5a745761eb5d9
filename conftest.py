"""Fixtures shared by every app's tests: retailers with keys, an API client, clean Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from app.db_availability import database_breaker_reset
from app.redis_client import reset_for_tests
from app.tenancy.authentication import key_cache_clear
from app.tenancy.models import Retailer
from app.tenancy.services import retailer_create
from workers.routing import Queue
from workers.testing import (
    ManagedProcess,
    ProcessGroup,
    WebServer,
    broker_client,
    start_celery_beat,
    start_celery_worker,
    start_outbox_relay,
)


@dataclass
class Tenant:
    retailer: Retailer
    publishable_key: str
    secret_key: str
    origin: str

    def client(self) -> APIClient:
        """An API client that sends this tenant's secret key."""
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.secret_key}")
        return client


def tenant_make(name: str) -> Tenant:
    origin = f"https://{name.lower()}.shop.example"
    retailer, publishable, secret = retailer_create(name=name, origins=[origin], actor="test")
    return Tenant(retailer=retailer, publishable_key=publishable.raw, secret_key=secret.raw, origin=origin)


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Every test starts with empty in-process caches and an empty cache Redis database.

    The flush uses a patient client: the hot path's own gives up after 50 ms, which a
    busy CI machine sometimes takes before the test has even started.
    """
    key_cache_clear()
    reset_for_tests()
    database_breaker_reset()
    with redis.Redis.from_url(django_settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5) as client:
        client.flushdb()
    yield
    key_cache_clear()


@pytest.fixture
def alice(db: None) -> Tenant:
    return tenant_make("Alice")


@pytest.fixture
def bob(db: None) -> Tenant:
    return tenant_make("Bob")


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def broker_redis() -> Iterator[redis.Redis]:
    """This test's broker Redis database, empty before and after the test."""
    client = broker_client()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def celery_worker(transactional_db: None, broker_redis: redis.Redis) -> Iterator[Callable[..., ManagedProcess]]:
    """Start real Celery workers: ``celery_worker(["ingest"], concurrency=2, include=[...])``.

    Each call returns a running :class:`workers.testing.ManagedProcess`; all are stopped at teardown.
    """
    group = ProcessGroup()

    def start(queues: list[str], concurrency: int = 1, pool: str = "prefork", **options: Any) -> ManagedProcess:
        return group.add(start_celery_worker(queues, concurrency, pool, **options))

    yield start
    group.stop_all()


@pytest.fixture
def outbox_relay(transactional_db: None, broker_redis: redis.Redis) -> Iterator[Callable[..., ManagedProcess]]:
    """Start real ``manage.py outbox_relay`` processes; all are stopped at teardown."""
    group = ProcessGroup()

    def start(*args: str, extra_env: dict[str, str] | None = None, include: list[str] | None = None) -> ManagedProcess:
        return group.add(start_outbox_relay(*args, extra_env=extra_env, include=include or []))

    yield start
    group.stop_all()


@pytest.fixture
def journal_sweeps(celery_worker: Callable[..., ManagedProcess]) -> Iterator[Callable[[], int]]:
    """Production's publish-journal sweep (``workers.journal``): beat's schedule, run by a
    maintenance worker, for tests where a worker killed between its ``BRPOP`` and kombu's
    record of the message loses one. Yields a reader of how many messages it pushed back."""
    maintenance = celery_worker([Queue.MAINTENANCE.value])
    beat = start_celery_beat()
    yield lambda: sum(event["republished"] for event in maintenance.events("journal_swept"))
    beat.stop()


@pytest.fixture
def web_server(transactional_db: None) -> Iterator[Callable[..., WebServer]]:
    """Start real gunicorn web processes (production's app/gunicorn_conf.py) on free ports
    (``web_server().get("/metrics")``, ``web_server(extra_env={...})``); all are stopped at teardown."""
    group = ProcessGroup()

    def start(extra_env: dict[str, str] | None = None) -> WebServer:
        server = WebServer(extra_env=extra_env)
        group.add(server.process)
        return server

    yield start
    group.stop_all()
