"""The PostgreSQL backend checks a persistent connection at most once per DB_HEALTH_CHECK_INTERVAL
(app/postgresql/base.py): on the real server, with its backend terminated under it."""

from __future__ import annotations

import psycopg
import pytest
from django.db import OperationalError, connection, connections

from app.db_availability import database_unreachable


def _server_ends_the_session(pid: int) -> None:
    """What a restart does to an idle connection: the server ends its backend."""
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def _next_request() -> None:
    """What Django does between two requests (or Celery tasks): its rules, then a new health check."""
    connection.close_if_unusable_or_obsolete()


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


@pytest.fixture
def persistent_connection(settings, transactional_db):
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60
    connection.close()
    connection.settings_dict["CONN_MAX_AGE"] = 60
    connection.settings_dict["CONN_HEALTH_CHECKS"] = True
    yield
    connection.close()


def test_the_settings_give_postgresql_urls_this_backend():
    assert connection.settings_dict["ENGINE"] == "app.postgresql"
    assert type(connections["default"]).__module__ == "app.postgresql.base"


def test_a_connection_checked_past_the_interval_is_checked_again_and_replaced(persistent_connection, settings):
    settings.DB_HEALTH_CHECK_INTERVAL = 0
    first = _backend_pid()
    _server_ends_the_session(first)
    _next_request()
    assert _backend_pid() != first  # the check found it dead and Django connected afresh


def test_a_connection_checked_within_the_interval_fails_as_unreachable_then_is_replaced(
    persistent_connection, settings
):
    settings.DB_HEALTH_CHECK_INTERVAL = 3600
    first = _backend_pid()
    _server_ends_the_session(first)
    _next_request()
    with pytest.raises(OperationalError) as failed:  # no check: the statement meets the closed session
        _backend_pid()
    assert database_unreachable(failed.value)  # the web's 503 and the task's uncounted wait
    _next_request()  # Django drops a connection that failed this way
    assert _backend_pid() != first
