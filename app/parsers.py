"""The JSON parser of every DRF view: JSON as DRF parses it, refused when it holds text PostgreSQL cannot store.

JSON can carry NUL and lone surrogates only as ``\\u`` escapes, and a string at any
depth (an object key too) may end up in a ``text`` or ``jsonb`` column, so the whole
document is checked once here, before any serializer or service sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.parsers import JSONParser

from app.input_guard import invalid_characters
from app.text_rules import unstorable_paths


class StorableJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        fields = list(unstorable_paths(data))
        if fields:
            raise invalid_characters([field or "(body)" for field in fields])
        return data
