"""Which text the service can keep: the one predicate behind ``invalid_characters``, and full-match patterns.

PostgreSQL (UTF-8 server encoding) refuses two kinds of character that a Python
string can hold: NUL (U+0000) in ``text`` ("A string literal cannot contain NUL")
and, as the ``\\u0000`` escape, in ``jsonb`` ("unsupported Unicode escape
sequence"); and lone surrogates (U+D800 to U+DFFF), which psycopg cannot encode to
UTF-8 at all and which ``jsonb`` refuses as escapes. Every other code point is
stored and read back unchanged (``app/tests/test_text_rules.py`` checks this
against the real database with all of Unicode). Each entry point that decodes
client text (the request guard in ``app.input_guard``, the JSON parser in
``app.parsers``, the events validation) asks :func:`text_storable`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_storable(value: str) -> bool:
    """Whether PostgreSQL's ``text`` and ``jsonb`` can store ``value`` as it is.

    ASCII text (``isascii`` reads a flag CPython keeps) can only hold NUL, found by ``memchr``:
    a 6.5 KB query value costs well under a microsecond; only other text pays for the regex.
    """
    if value.isascii():
        return "\x00" not in value
    return UNSTORABLE.search(value) is None


def field_label(name: str) -> str:
    """``name`` as it may be shown in an error body: JSON escapes for what cannot be stored."""
    return name if text_storable(name) else json.dumps(name)[1:-1]


def unstorable_paths(data: Any, path: str = "") -> Iterator[str]:
    """The paths (``params.windows[0].days``) of the strings in decoded JSON that cannot be stored.

    Object keys count too: a key is stored inside a ``jsonb`` value like any string.
    """
    if isinstance(data, str):
        if not text_storable(data):
            yield path
    elif isinstance(data, dict):
        for key, value in data.items():
            child = f"{path}.{field_label(str(key))}" if path else field_label(str(key))
            if isinstance(key, str) and not text_storable(key):
                yield child
            yield from unstorable_paths(value, child)
    elif isinstance(data, list):
        for position, value in enumerate(data):
            yield from unstorable_paths(value, f"{path}[{position}]")


@dataclass(frozen=True)
class FullMatch:
    """A pattern a whole value must match, written once and rendered in each dialect that needs it.

    ``body`` uses only syntax that Python's ``re`` and ECMAScript read alike (character
    classes and counts). Anchoring with ``^…$`` is the bug this class exists for: in
    Python ``$`` also matches before a final newline, so ``ABC\\n`` passed.
    """

    body: str

    @cached_property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.body)

    def matches(self, value: object) -> bool:
        return isinstance(value, str) and self.compiled.fullmatch(value) is not None

    @property
    def python_search(self) -> str:
        """For tools that search rather than match in full (DRF ``RegexField``, msgspec)."""
        return rf"\A(?:{self.body})\Z"

    @property
    def ecmascript(self) -> str:
        """For OpenAPI ``pattern`` and JavaScript ``RegExp`` (no ``m`` flag: ``$`` is the end of input)."""
        return f"^(?:{self.body})$"
