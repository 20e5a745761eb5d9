"""Idempotency-Key when storing the answer fails inside PostgreSQL: the effect rolls back with it, and runs once.

The completion write is made to fail for real, by a trigger on the stored-answer table
(installed in this test's database only, and dropped at the end), not by a mock: the
rotation's own transaction and the answer's are then one, or the key would exist twice.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection

from app.tenancy.models import ApiKey, IdempotentRequest

pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("faults"), pytest.mark.timeout(60)]

TABLE = IdempotentRequest._meta.db_table


@pytest.fixture
def completion_refused(transactional_db: None) -> Iterator[None]:
    """Every UPDATE that marks a stored answer completed raises in PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION sf_test_refuse_completion() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'completion refused by the test'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER sf_test_refuse_completion BEFORE UPDATE ON {TABLE} FOR EACH ROW "
            "WHEN (NEW.completed) EXECUTE FUNCTION sf_test_refuse_completion()"
        )
    try:
        yield
    finally:
        _completion_allowed()


def _completion_allowed() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER IF EXISTS sf_test_refuse_completion ON {TABLE}")
        cursor.execute("DROP FUNCTION IF EXISTS sf_test_refuse_completion()")


def _rotate(client, key: str):
    return client.post("/v1/keys/rotate", {"kind": "pk"}, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_failed_answer_write_undoes_the_effect_and_the_retry_runs_it_once(alice, completion_refused) -> None:
    client = alice.client()
    client.raise_request_exception = False
    keys = ApiKey.objects.filter(retailer=alice.retailer, kind="pk")

    failed = _rotate(client, "rotate-under-fault")

    assert failed.status_code == 500
    assert keys.count() == 1, "the rotation committed although its answer was not stored"
    assert not IdempotentRequest.objects.exists(), "the claim was left behind: a retry would wait for it"

    _completion_allowed()
    retried = _rotate(client, "rotate-under-fault")
    replayed = _rotate(client, "rotate-under-fault")

    assert retried.status_code == replayed.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert replayed["Idempotent-Replayed"] == "true"
    assert keys.count() == 2
