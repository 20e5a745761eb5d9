"""The storable-text predicate agrees with PostgreSQL itself, over all of Unicode; full-match patterns."""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.text_rules import FullMatch, text_storable, unstorable_paths

# Every code point, surrogates included, with NUL and a lone surrogate drawn often.
ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(),  # every code point but the surrogates
        st.integers(0xD800, 0xDFFF).map(chr),
        st.just("\x00"),
    ),
    max_size=8,
)


def _postgresql_stores(value: str) -> bool:
    """Whether PostgreSQL takes ``value`` as text and, JSON-encoded as Django's JSONField sends it, as jsonb."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT %s::text, %s::jsonb", [value, json.dumps(value)])
            text, stored = cursor.fetchone()
    except (DatabaseError, ValueError, UnicodeEncodeError):
        return False
    assert text == value  # read back unchanged
    assert json.loads(stored) == value  # (Django reads jsonb as text)
    return True


@pytest.mark.django_db
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=ANY_TEXT)
def test_text_storable_is_what_postgresql_stores(value: str) -> None:
    assert text_storable(value) == _postgresql_stores(value)


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["\x00", "a\ud800", "\udfff", "\ufffe\uffff", "\U0010ffff", "\u2028", ""])
def test_the_edges_of_unicode(value: str) -> None:
    assert text_storable(value) == _postgresql_stores(value)


def test_unstorable_paths_name_values_and_keys_at_any_depth() -> None:
    data = {"a": ["ok", {"b\x00": 1, "c": "\ud800"}], "d": "fine", "e\ud801": None}

    assert list(unstorable_paths(data)) == ["a[1].b\\u0000", "a[1].c", "e\\ud801"]


def test_a_full_match_refuses_a_final_newline_in_every_dialect() -> None:
    rule = FullMatch(r"[A-Z]{1,3}")

    assert rule.matches("ABC")
    assert not any(rule.matches(value) for value in ("ABC\n", "", "ABCD", None))
    assert rule.python_search == r"\A(?:[A-Z]{1,3})\Z"
    assert rule.ecmascript == "^(?:[A-Z]{1,3})$"
