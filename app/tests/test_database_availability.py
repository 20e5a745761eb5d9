"""What "the database is away" means, and the limits that keep it from hanging a process."""

from __future__ import annotations

import psycopg
import pytest
from django.db import OperationalError, connection, transaction

from app.db_availability import database_unreachable, sql_deadline


def test_every_connection_has_a_statement_timeout_and_a_connect_timeout(db, settings) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "30s"
    assert 0 < settings.DATABASES["default"]["OPTIONS"]["connect_timeout"] <= 2


def test_a_refused_connection_is_unreachable() -> None:
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect("postgres://postgres@127.0.0.1:1/none", connect_timeout=2)
    wrapped = OperationalError(str(refused.value))
    wrapped.__cause__ = refused.value  # as Django's wrap_database_errors chains it
    assert database_unreachable(wrapped)


def _sleep_past_a_50ms_statement_timeout() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '50ms'")
        cursor.execute("SELECT pg_sleep(2)")


def test_a_statement_that_ran_out_of_time_is_not_unreachable(db) -> None:
    with pytest.raises(OperationalError) as cancelled:
        _sleep_past_a_50ms_statement_timeout()
    assert cancelled.value.__cause__.sqlstate == "57014"
    assert not database_unreachable(cancelled.value)


def test_sql_past_its_deadline_fails_as_a_lost_connection_instead_of_waiting(transactional_db) -> None:
    try:
        with sql_deadline(0.2), connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
            with pytest.raises(OperationalError) as lost:
                cursor.execute("SELECT pg_sleep(3)")  # the server would answer after 3 s; the client stops waiting
        assert database_unreachable(lost.value)
    finally:
        connection.close()
