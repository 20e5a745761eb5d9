"""/healthz and /readyz. Readiness means "this process can serve traffic" (``app.health``):
only losing every price source (cache Redis and PostgreSQL both away), or a broker refused by
``BROKER_CONFIG_CHECK=refuse``, makes a web process unready. Dependencies that are away are
named in the body, never with their error text."""

from __future__ import annotations

import pytest
from django.test import Client

from workers import broker_config
from workers.testing import WebServer

CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
CLOSED_PORT_DATABASE = "postgres://postgres@127.0.0.1:1/nothing"


@pytest.fixture(autouse=True)
def _fresh_broker_config_state():
    broker_config.reset_for_tests()
    yield
    broker_config.reset_for_tests()


def test_healthz_answers_without_dependencies(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_every_dependency(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert {name: checks[name] for name in ("database", "redis", "broker")} == {
        "database": "ok",
        "redis": "ok",
        "broker": "ok",
    }
    # the suite runs cache and broker as two databases of one server, with BROKER_CONFIG_CHECK=warn
    assert "same_instance_as_cache" in checks["broker_config"].split(",")
    assert "broker_config" in response.json()["failed"]


@pytest.mark.django_db
def test_readyz_stays_ready_without_the_broker_and_names_it(client: Client, settings) -> None:
    settings.CELERY_BROKER_URL = CLOSED_PORT_REDIS
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"] == "unavailable"
    assert body["checks"]["broker_config"] == "unchecked"
    assert "Error" not in response.content.decode()  # no error text


@pytest.mark.django_db
def test_readyz_stays_ready_without_the_cache_redis(client: Client, settings) -> None:
    settings.REDIS_URL = CLOSED_PORT_REDIS
    response = client.get("/readyz")
    assert response.status_code == 200
    assert "redis" in response.json()["failed"]
    assert response.json()["checks"]["redis"] == "unavailable"


@pytest.mark.django_db(transaction=True)
def test_a_web_process_without_postgresql_stays_ready_and_without_any_price_source_is_unready() -> None:
    """Real gunicorn processes whose database (and then cache) is a closed port."""
    without_database = WebServer(extra_env={"DATABASE_URL": CLOSED_PORT_DATABASE})
    try:
        status, body = without_database.get("/readyz")
    finally:
        without_database.process.stop(timeout=5)
    assert status == 200, body
    assert '"database":"unavailable"' in body
    assert '"status":"degraded"' in body

    without_prices = WebServer(extra_env={"DATABASE_URL": CLOSED_PORT_DATABASE, "REDIS_URL": CLOSED_PORT_REDIS})
    try:
        status, body = without_prices.get("/readyz")
    finally:
        without_prices.process.stop(timeout=5)
    assert status == 503, body
    assert '"failed":["database","redis"' in body
    assert "connect" not in body.lower()  # no error text


def test_unknown_url_is_a_json_404(client: Client) -> None:
    response = client.get("/no/such/place")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_metrics_report_each_dependency_as_the_readiness_probe_sees_it(client: Client, settings) -> None:
    settings.REDIS_URL = CLOSED_PORT_REDIS
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    text = response.content.decode()
    assert response.status_code == 200
    assert 'storefabric_dependency_up{dependency="redis"} 0.0' in text
    assert 'storefabric_dependency_up{dependency="database"} 1.0' in text
    assert 'storefabric_dependency_up{dependency="broker"} 1.0' in text
