"""The hot path's round trip: one connection per thread, replaced when the server drops it."""

from __future__ import annotations

import threading

import pytest
import redis

from app.redis_client import cache_redis, round_trip


def _client_id(client: redis.Redis) -> int:
    return int(round_trip(client, [("CLIENT", "ID")])[0])


def test_a_thread_keeps_one_connection_across_round_trips() -> None:
    client = cache_redis()
    first = _client_id(client)
    assert [_client_id(client) for _ in range(5)] == [first] * 5


def test_each_thread_has_its_own_connection() -> None:
    client = cache_redis()
    ids: list[int] = []
    threads = [threading.Thread(target=lambda: ids.append(_client_id(client))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({*ids, _client_id(client)}) == 4


def test_commands_of_one_round_trip_are_answered_in_order() -> None:
    client = cache_redis()
    replies = round_trip(client, [("SET", "rt:a", "1"), ("INCR", "rt:a"), ("MGET", "rt:a", "rt:none")])
    assert replies == [b"OK", 2, [b"2", None]]


def test_a_connection_the_server_closed_is_replaced_without_an_error() -> None:
    client = cache_redis()
    old = _client_id(client)
    assert client.client_kill_filter(_id=old) == 1  # as a Redis restart or an idle timeout would
    assert round_trip(client, [("PING",)]) == [b"PONG"]
    assert _client_id(client) != old


def test_an_error_reply_leaves_no_unread_reply_behind_and_the_connection_in_use() -> None:
    client = cache_redis()
    round_trip(client, [("SET", "rt:text", "x")])
    before = _client_id(client)
    with pytest.raises(redis.ResponseError):
        round_trip(client, [("INCR", "rt:text"), ("ECHO", "read before the error is raised")])
    assert round_trip(client, [("ECHO", "next")]) == [b"next"]
    assert _client_id(client) == before
