"""Which text PostgreSQL can keep: the one predicate for strings that reach ``text`` or ``jsonb``.

PostgreSQL (UTF-8 server encoding) refuses NUL (U+0000) in ``text`` and, as the
``\\u0000`` escape, in ``jsonb`` ("unsupported Unicode escape sequence"); lone
surrogates (U+D800 to U+DFFF) cannot be encoded to UTF-8 at all and ``jsonb`` refuses
them as escapes. Every other code point is stored and read back unchanged.
"""

from __future__ import annotations

import re

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_storable(value: str) -> bool:
    """Whether PostgreSQL's ``text`` and ``jsonb`` can store ``value`` as it is."""
    return UNSTORABLE.search(value) is None
