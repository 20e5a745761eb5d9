"""A batch is validated as a whole; every bad event is named by its index."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from analytics.validation import batch_validate, events_to_task_rows
from app.errors import ApiError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OLDEST = NOW - timedelta(days=14)


def event(**fields) -> dict:
    base = {"id": str(uuid.uuid4()), "type": "product_view", "sku": "SKU-1", "ts": NOW.isoformat(), "session": "s1"}
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def body(*events: dict) -> bytes:
    return orjson.dumps({"events": list(events)})


def refused(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        batch_validate(raw, oldest=OLDEST)
    return caught.value


def test_a_valid_batch_decodes_into_typed_events():
    events = batch_validate(
        body(event(type="page_view", sku=None), event(type="purchase", quantity=2, price="19.99", variant="b")),
        oldest=OLDEST,
    )
    assert [e.type for e in events] == ["page_view", "purchase"]
    assert str(events[1].price) == "19.99"


def test_each_bad_event_is_named_by_index_and_field():
    error = refused(
        body(event(), event(id="not-a-uuid"), event(), event(type="wink"), event(type="add_to_cart", sku=None))
    )
    assert error.status == 400
    assert error.error.code == "validation_failed"
    assert [(row["index"], row["field"]) for row in error.details] == [
        (1, "events[1].id"),
        (3, "events[3].type"),
        (4, "events[4].sku"),
    ]
    assert "1, 3, 4" in error.message


def test_wrong_types_are_reported_per_event():
    error = refused(
        body(event(quantity="two"), event(session=7), event(ts="yesterday"), event(ts="2026-03-01T12:00:00"))
    )
    assert [row["index"] for row in error.details] == [0, 1, 2, 3]
    assert "timezone" in error.details[3]["message"]


def test_a_price_with_too_many_decimals_or_negative_is_invalid():
    error = refused(body(event(type="purchase", price="1.00001"), event(type="purchase", price="-1")))
    assert [row["field"] for row in error.details] == ["events[0].price", "events[1].price"]


def test_events_older_than_the_window_have_their_own_code():
    error = refused(body(event(), event(ts=(OLDEST - timedelta(seconds=1)).isoformat())))
    assert error.error.code == "event_too_old"
    assert error.details[0]["index"] == 1


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2]", "validation_failed"),
        (b'{"events": []}', "validation_failed"),
        (b'{"events": "many"}', "validation_failed"),
        (b'{"events": [' + b",".join([b"{}"] * 10_000) + b"]}", "validation_failed"),
    ],
)
def test_malformed_envelopes_are_refused_clearly(raw, code):
    error = refused(raw)
    assert error.error.code == code
    assert error.status == 400


def test_task_rows_are_json_and_never_in_the_future():
    future = NOW + timedelta(hours=3)
    events = batch_validate(
        body(event(ts=future.isoformat()), event(ts="2026-03-01T13:00:00+02:00", type="purchase", price="5")),
        oldest=OLDEST,
    )
    rows = events_to_task_rows(events, received_at=NOW)
    assert orjson.loads(orjson.dumps(rows)) == rows
    assert rows[0][5] == NOW.isoformat()
    assert rows[1][5] == "2026-03-01T11:00:00+00:00"
    assert rows[1][7] == "5"  # as written: a decimal string the database reads as it is


@pytest.mark.parametrize("session", ["a\x00b", "\x00"], ids=["inside", "alone"])
def test_a_session_postgresql_cannot_store_is_refused_by_name(session):
    error = refused(body(event(), event(session=session)))
    assert error.error.code == "validation_failed"
    assert [(row["field"], row["code"]) for row in error.details] == [("events[1].session", "invalid_characters")]


@pytest.mark.parametrize(
    "raw",
    [b'"session": "\xed\xa0\x80"', b'"note": "\xed\xa0\x80"', b'"note": "\xff"'],
    ids=["raw-surrogate", "raw-surrogate-in-unknown-field", "not-utf8-in-unknown-field"],
)
def test_a_body_that_is_not_utf8_is_refused_even_where_no_field_is_read(raw):
    valid = body(event())
    error = refused(valid[:-3] + b"," + raw + valid[-3:])
    assert (error.status, error.error.code) == (400, "invalid_json")


@pytest.mark.parametrize(
    "price", ["0E-20000", "0E+2000000000", "1.5", '"1E+2"', '"0E-20000"', '"1.50000"', '"5\\n"', '" 5"']
)
def test_a_price_that_is_not_a_plain_decimal_string_is_refused(price):
    """A JSON number, an exponent, more than 4 places or whitespace: PostgreSQL's numeric would
    refuse some (0E-20000 overflows) or read others differently; the contract says a decimal string."""
    raw = body(event(price="PRICE")).replace(b'"PRICE"', price.encode())
    assert [row["field"] for row in refused(raw).details] == ["events[0].price"]
