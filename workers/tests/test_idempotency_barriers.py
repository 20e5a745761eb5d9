"""The two barriers: a unique row in PostgreSQL, a check-and-apply script in Redis."""

from __future__ import annotations

import threading

import pytest
import redis
from django.db import connection, transaction

from workers.idempotency import db_claim, db_once, redis_once
from workers.models import IdempotencyRecord
from workers.tests import fault_tasks


def test_db_once_applies_the_effect_once_per_key(effects):
    results = [db_once(key="charge:1", effect=lambda: fault_tasks.unguarded_apply("charge:1")) for _ in range(3)]

    assert results == [(True, None), (False, None), (False, None)]
    assert effects.unguarded() == {"charge:1": 1}


def test_an_effect_that_fails_releases_its_claim_so_the_retry_applies_it(effects):
    def broken() -> None:
        fault_tasks.unguarded_apply("charge:2")
        raise TimeoutError("the effect did not finish")

    with pytest.raises(TimeoutError):
        db_once(key="charge:2", effect=broken)
    applied, _ = db_once(key="charge:2", effect=lambda: fault_tasks.unguarded_apply("charge:2"))

    assert applied
    assert effects.unguarded() == {"charge:2": 1}


def test_concurrent_duplicates_wait_for_the_first_and_then_skip(effects):
    first_claimed, release = threading.Event(), threading.Event()
    outcomes: list[bool] = []

    def slow_first() -> None:
        def effect() -> None:
            fault_tasks.unguarded_apply("race")
            first_claimed.set()
            release.wait(5)

        outcomes.append(db_once(key="race", effect=effect)[0])
        connection.close()

    def duplicate() -> None:
        first_claimed.wait(5)
        outcomes.append(db_once(key="race", effect=lambda: fault_tasks.unguarded_apply("race"))[0])
        connection.close()

    threads = [threading.Thread(target=slow_first), threading.Thread(target=duplicate)]
    for thread in threads:
        thread.start()
    first_claimed.wait(5)
    release.set()
    for thread in threads:
        thread.join(10)

    assert sorted(outcomes) == [False, True]
    assert effects.unguarded() == {"race": 1}


def test_db_claim_refuses_to_run_outside_the_effect_transaction(transactional_db):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        db_claim("loose")
    with transaction.atomic():
        assert db_claim("tight")
    assert IdempotencyRecord.objects.filter(key="tight").exists()


def test_redis_once_claims_and_applies_in_one_step_with_a_ttl(broker_redis):
    client = broker_redis
    increments = [["INCRBY", "views:sku-1", 3], ["HINCRBY", "views", "sku-1", 1]]

    first = redis_once(client=client, key="seen:evt-1", commands=increments, ttl=60)
    again = redis_once(client=client, key="seen:evt-1", commands=increments, ttl=60)

    assert (first, again) == (True, False)
    assert client.get("views:sku-1") == b"3"
    assert client.hget("views", "sku-1") == b"1"
    assert 0 < client.ttl("seen:evt-1") <= 60


def test_redis_once_with_a_failing_command_leaves_the_key_unclaimed_for_the_retry(broker_redis):
    broker_redis.set("not-a-hash", "x")

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        redis_once(client=broker_redis, key="seen:evt-2", commands=[["HINCRBY", "not-a-hash", "f", 1]], ttl=60)
    broker_redis.delete("not-a-hash")
    retried = redis_once(client=broker_redis, key="seen:evt-2", commands=[["HINCRBY", "not-a-hash", "f", 1]], ttl=60)

    assert retried is True
    assert broker_redis.hget("not-a-hash", "f") == b"1"
