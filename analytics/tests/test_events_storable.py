"""A 202 means counted: every batch the API accepts is stored and counted by the real ingest worker.

A property test on PostgreSQL: batches are drawn from all of Unicode (NUL and lone surrogates
included, written as JSON escapes or as raw bytes), extreme decimal exponents, timestamps at the
edges, unknown fields and wrong types. Each goes through ``POST /v1/events``; the answer is 202 or
a 400, never a 5xx, and every event of a 202 is counted once by one worker started for the whole
test, with no dead letter.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analytics.models import RawEvent
from analytics.tests.probes import CHROME_UA, counted_total
from pricing.skus import SKU
from workers.models import DeadLetter
from workers.testing import ManagedProcess, wait_until

EXAMPLES = 50  # ~0.3 s each with one worker; enough to find both known holes most of the time


class Number(str):
    """A JSON number written as it is (``0E-20000``): the client's own spelling reaches the API."""


# Every code point, surrogates included; among 1.1 million, Hypothesis seldom draws the few that
# matter here, so NUL and both ends of the surrogate range are drawn as often as all the others.
CODE_POINTS = st.one_of(st.characters(exclude_categories=()), st.sampled_from(["\x00", "\ud800", "\udfff"]))
ANY_TEXT = st.text(CODE_POINTS, max_size=20)
# Every order of magnitude up to a billion, either way: 0E-20000, 1E+100000000, 12E-1.
EXPONENTS = st.builds(lambda power, sign: sign * 10**power, st.integers(0, 9), st.sampled_from([1, -1]))
DECIMALS = st.builds(
    lambda sign, coefficient, exponent: Decimal((sign, tuple(map(int, str(coefficient))), exponent)),
    st.sampled_from([0, 0, 0, 1]),
    st.one_of(st.just(0), st.integers(0, 10**14)),
    EXPONENTS,
)
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(
    lambda minutes: f"{'+-'[minutes < 0]}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"
)


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int = 8) -> st.SearchStrategy[Any]:
    """``odd`` once in ``one_in`` draws, else ``usual``: a batch with one odd field in a few is
    accepted or refused for that field alone, which is what the property is about."""
    return st.integers(1, one_in).flatmap(lambda draw: odd if draw == 1 else usual)


def _timestamps() -> st.SearchStrategy[str]:
    """Recent (inside the window), or far in the future or at the calendar's ends, with any zone offset."""
    recent = st.integers(0, 3600).map(lambda seconds: datetime.now(UTC) - timedelta(seconds=seconds))
    edges = st.sampled_from([datetime(9999, 12, 31, 23, 59, 59), datetime(1, 1, 1), datetime(2100, 1, 1)])
    odd = st.builds(lambda moment, offset: moment.isoformat() + offset, st.one_of(edges, recent), OFFSETS)
    return mostly(recent.map(lambda moment: moment.isoformat()), odd)


def _events() -> st.SearchStrategy[dict[str, Any]]:
    optional = {
        "variant": mostly(st.from_regex(r"[A-Za-z0-9._-]{0,32}", fullmatch=True), ANY_TEXT),
        "quantity": mostly(st.integers(1, 100_000), st.integers()),
        "note": ANY_TEXT,  # a field the API does not know: ignored, never stored
    }
    return st.fixed_dictionaries(
        {
            "type": st.sampled_from(["page_view", "product_view", "add_to_cart", "purchase"]),
            "sku": mostly(st.from_regex(SKU.body, fullmatch=True), ANY_TEXT),
            "ts": _timestamps(),
            "price": mostly(  # on any type of event: a price is checked wherever it is sent
                st.decimals(min_value=0, max_value=10**8, places=4).map(lambda value: Number(str(value))),
                st.one_of(DECIMALS.map(lambda value: Number(str(value))), DECIMALS.map(str)),
                one_in=2,
            ),
            "session": mostly(
                st.text(st.characters(codec="ascii"), min_size=1, max_size=128),
                st.text(CODE_POINTS, min_size=1, max_size=130),
            ),
        },
        optional=optional,
    )


def _json(value: Any, ascii_only: bool) -> str:
    if isinstance(value, Number):
        return str(value)
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{_json(key, ascii_only)}:{_json(item, ascii_only)}" for key, item in value.items()) + "}"
        )
    if isinstance(value, list):
        return "[" + ",".join(_json(item, ascii_only) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def batch_encode(events: list[dict[str, Any]], ascii_only: bool) -> bytes:
    """The batch as a client might write it: escapes (``\\u0000``, ``\\ud800``) or raw UTF-8 bytes,
    where a lone surrogate becomes bytes that are not UTF-8. Each event gets a fresh id, so every
    accepted event is new and must be counted."""
    with_ids = [{"id": str(uuid.uuid4()), **event} for event in events]
    return _json({"events": with_ids}, ascii_only).encode("utf-8", "surrogatepass")


@pytest.fixture
def ingest_worker(celery_worker) -> ManagedProcess:
    """One ingest worker for all examples of a test (starting one costs seconds)."""
    return celery_worker(["ingest"])


def _counted_or_dead_lettered(retailer_id: int, stored: int, counted: int, letters_before: int) -> bool:
    if DeadLetter.objects.filter(pk__gt=letters_before).exists():
        return True
    return RawEvent.objects.filter(retailer_id=retailer_id).count() >= stored and counted_total(retailer_id) >= counted


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(events=st.lists(_events(), min_size=1, max_size=3), ascii_only=st.booleans())
def test_every_batch_the_api_accepts_is_stored_and_counted(alice, ingest_worker, events, ascii_only) -> None:
    retailer_id = alice.retailer.id
    stored, counted = RawEvent.objects.filter(retailer_id=retailer_id).count(), counted_total(retailer_id)
    letters_before = DeadLetter.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    body = batch_encode(events, ascii_only)

    response = Client().generic(
        "POST", f"/v1/events?key={alice.publishable_key}", body, content_type="text/plain", HTTP_USER_AGENT=CHROME_UA
    )

    assert response.status_code in (202, 400), f"{response.content[:300]!r}\nbody: {body!r}"
    event(f"answered {response.status_code}")
    if response.status_code == 400:
        assert response.json()["error"]["code"] in ("validation_failed", "invalid_json", "event_too_old")
        return
    accepted = response.json()["accepted"]
    assert accepted == len(events)
    wait_until(
        lambda: _counted_or_dead_lettered(retailer_id, stored + accepted, counted + accepted, letters_before),
        timeout=30,
        message="an accepted batch was neither counted nor dead-lettered",
    )
    letter = DeadLetter.objects.filter(pk__gt=letters_before).first()
    assert letter is None, f"an accepted batch dead-lettered: {letter.exception[:300]}\nbody: {body!r}"
    assert RawEvent.objects.filter(retailer_id=retailer_id).count() == stored + accepted
    assert counted_total(retailer_id) == counted + accepted
