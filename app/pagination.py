"""Cursor pagination shared by every app's list endpoints (moved here from pricing for backups)."""

from __future__ import annotations

from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from app.errors import ApiError
from app.input_guard import invalid_characters
from app.text_rules import text_storable


class CursorPage(CursorPagination):
    """Cursor pagination whose unreadable cursor or page size is a 400 naming the parameter (DRF
    answers 404 for the cursor and silently uses its default for a page size it cannot read)."""

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """DRF's parameters, with the page size's bounds that :meth:`get_page_size` enforces."""
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1, "maximum": self.max_page_size}
        return parameters

    def get_page_size(self, request: Any) -> int | None:
        raw = request.query_params.get(self.page_size_query_param) if self.page_size_query_param else None
        if raw is None:
            return self.page_size
        limit = self.max_page_size or self.page_size or 0
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= limit):
            problem = {"field": self.page_size_query_param, "code": "invalid", "message": f"1 to {limit}."}
            raise ApiError("validation_failed", details=[problem])
        return int(raw)

    def decode_cursor(self, request: Any) -> Any:
        try:
            cursor = super().decode_cursor(request)
        except NotFound as error:
            raise ApiError(
                "validation_failed",
                details=[
                    {"field": self.cursor_query_param, "code": "invalid", "message": "Use a next or previous link."}
                ],
            ) from error
        if cursor is None or cursor.position is None:
            return cursor
        position = str(cursor.position)  # the text after p= in the decoded cursor (typed int by the stubs)
        if not text_storable(position):
            raise invalid_characters([self.cursor_query_param])  # base64 hides a NUL from the request guard
        if not self.position_readable(position):
            raise ApiError(
                "validation_failed",
                details=[
                    {"field": self.cursor_query_param, "code": "invalid", "message": "Use a next or previous link."}
                ],
            )
        return cursor

    def position_readable(self, position: str) -> bool:
        """Whether the database can compare the ordering field with ``position`` (a forged cursor may hold anything)."""
        return True


def datetime_readable(position: str) -> bool:
    """Whether ``position`` (from a cursor over a datetime ordering) is a real datetime."""
    try:
        return parse_datetime(position) is not None
    except ValueError:  # well formed but impossible: 2025-02-30
        return False
