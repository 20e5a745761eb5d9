"""POST /v1/events with the public key is limited per client: one sender cannot spend every shopper's budget."""

from __future__ import annotations

import pytest
from django.test import Client

from analytics.tests.factories import batch_body, event_json

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def post_from(key: str, address: str) -> int:
    body = batch_body([event_json()])
    response = Client().generic(
        "POST", f"/v1/events?key={key}", body, content_type="text/plain", HTTP_USER_AGENT=CHROME, REMOTE_ADDR=address
    )
    if response.status_code == 429:
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response["Retry-After"]) >= 1
    return response.status_code


@pytest.mark.django_db
def test_a_sender_over_its_limit_gets_429_while_another_shopper_keeps_getting_202(alice, settings, broker_redis):
    settings.RATE_LIMIT_PER_CLIENT_PER_MINUTE = 2
    assert [post_from(alice.publishable_key, "198.51.100.5") for _ in range(4)] == [202, 202, 429, 429]
    assert [post_from(alice.publishable_key, "198.51.100.6") for _ in range(2)] == [202, 202]
    assert broker_redis.llen("ingest") == 4
