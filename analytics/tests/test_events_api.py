"""POST /v1/events: 202 once the broker holds the batch; clear 4xx and nothing queued otherwise."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest
from django.test import Client

from analytics.apis import KNOWN_BOTS
from analytics.tests.factories import batch_body, event_json

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture
def ingest_queue(broker_redis):
    """Number of batches waiting in the ingest queue of this test's broker."""
    return lambda: broker_redis.llen("ingest")


def post(client: Client, key: str, body: bytes, content_type: str = "text/plain;charset=UTF-8", **headers):
    return client.generic(
        "POST", f"/v1/events?key={key}", body, content_type=content_type, HTTP_USER_AGENT=CHROME, **headers
    )


def queued_kwargs(broker_redis) -> list[dict]:
    return [orjson.loads(base64.b64decode(orjson.loads(raw)["body"])) for raw in broker_redis.lrange("ingest", 0, -1)]


@pytest.mark.django_db
def test_a_beacon_batch_is_accepted_as_one_task(alice, client, broker_redis, ingest_queue):
    events = [event_json(type="page_view"), event_json(sku="A"), event_json(type="purchase", sku="A", price="9.99")]
    response = post(client, alice.publishable_key, batch_body(events), HTTP_ORIGIN=alice.origin)
    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "demand_ignored": 0}
    assert ingest_queue() == 1
    assert response["Access-Control-Allow-Origin"] == alice.origin
    assert response["Access-Control-Expose-Headers"] == "Retry-After"
    [(_args, kwargs, _)] = queued_kwargs(broker_redis)
    assert kwargs["retailer_id"] == alice.retailer.id
    assert [event["id"] for event in orjson.loads(kwargs["batch"])["events"]] == [event["id"] for event in events]
    assert kwargs["idempotency_key"].startswith("events:")


@pytest.mark.django_db
def test_json_bodies_and_secret_keys_are_accepted_too(alice, ingest_queue):
    response = alice.client().generic("POST", "/v1/events", batch_body([event_json()]), content_type="application/json")
    assert response.status_code == 202
    assert ingest_queue() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{bad json", "text/plain", 400, "invalid_json"),
        (b'{"events": {"a": 1}}', "text/plain", 400, "validation_failed"),
        (batch_body([event_json(type="wink")]), "text/plain", 400, "validation_failed"),
        (batch_body([event_json(id="123")]), "text/plain", 400, "validation_failed"),
        (batch_body([event_json(quantity="3")]), "text/plain", 400, "validation_failed"),
        (batch_body([{}] * 10_000), "text/plain", 400, "validation_failed"),
        (batch_body([event_json()]), "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"x" * (10 * 1024 * 1024), "text/plain", 413, "payload_too_large"),
    ],
    ids=["bad-json", "wrong-type", "unknown-type", "bad-uuid", "quantity-string", "10000-events", "form", "10MB"],
)
def test_malformed_batches_are_refused_and_nothing_is_queued(
    alice, client, ingest_queue, body, content_type, status, code
):
    response = post(client, alice.publishable_key, body, content_type=content_type)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert ingest_queue() == 0


@pytest.mark.django_db
def test_one_bad_event_refuses_the_whole_batch_naming_it(alice, client, ingest_queue):
    events = [event_json(), event_json(), event_json(type="add_to_cart", sku=None)]
    response = post(client, alice.publishable_key, batch_body(events))
    assert response.status_code == 400
    assert [row["index"] for row in response.json()["error"]["details"]] == [2]
    assert ingest_queue() == 0


@pytest.mark.django_db
def test_events_older_than_the_window_are_refused_with_their_own_code(alice, client, ingest_queue, settings):
    settings.ANALYTICS_RAW_RETENTION_DAYS = 1
    response = post(client, alice.publishable_key, batch_body([event_json(ts=datetime(2020, 1, 1, tzinfo=UTC))]))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "event_too_old"
    assert ingest_queue() == 0


@pytest.mark.django_db
def test_known_bots_are_answered_but_not_counted(alice, client, ingest_queue):
    response = client.generic(
        "POST",
        f"/v1/events?key={alice.publishable_key}",
        batch_body([event_json()]),
        content_type="text/plain",
        HTTP_USER_AGENT="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 0, "demand_ignored": 0, "ignored": "bot"}
    assert ingest_queue() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("agent", ["python-requests/2.32.3", "curl/8.5.0", "Googlebot/2.1", ""])
def test_a_secret_key_call_is_never_a_bot_whatever_its_user_agent(alice, ingest_queue, agent):
    response = alice.client().generic(
        "POST", "/v1/events", batch_body([event_json()]), content_type="application/json", HTTP_USER_AGENT=agent
    )
    assert (response.status_code, response.json()) == (202, {"accepted": 1, "demand_ignored": 0})
    assert ingest_queue() == 1


BOT_AGENTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Googlebot-Image/1.0",
    "AdsBot-Google (+http://www.google.com/adsbot.html)",
    "Mediapartners-Google",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
    "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.0; +https://openai.com/gptbot)",
    "Twitterbot/1.0",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "TelegramBot (like TwitterBot)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 "
    "Chrome-Lighthouse",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "python-requests/2.32.3",
    "curl/8.5.0",
]
SHOPPER_AGENTS = [
    CHROME,
    "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 9; CUBOT KING KONG 3 Build/PPR1.180610.011) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 12; CUBOT) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/126.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
]


@pytest.mark.parametrize("agent", BOT_AGENTS)
def test_common_crawlers_previewers_and_monitors_are_known_bots(agent):
    assert KNOWN_BOTS.search(agent)


@pytest.mark.parametrize("agent", SHOPPER_AGENTS)
def test_browsers_are_not_bots_even_on_a_cubot_phone_or_headless(agent):
    assert not KNOWN_BOTS.search(agent)


@pytest.mark.django_db
def test_a_foreign_origin_gets_403_without_cors_headers(alice, client, ingest_queue):
    response = post(client, alice.publishable_key, batch_body([event_json()]), HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response
    assert ingest_queue() == 0


@pytest.mark.django_db
def test_key_rules_apply(alice, client, ingest_queue):
    assert post(client, alice.secret_key, batch_body([event_json()])).status_code == 400  # secret key in URL
    assert post(client, "pk_unknown", batch_body([event_json()])).status_code == 401
    assert client.get(f"/v1/events?key={alice.publishable_key}").status_code == 405
    assert ingest_queue() == 0
