"""The request id of the work in progress, for responses, logs and tasks."""

from __future__ import annotations

import contextvars
import os

from app.text_rules import FullMatch

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_VALID_REQUEST_ID = FullMatch(r"[A-Za-z0-9._:-]{1,128}")  # in full: "abc\n" would break the response header


def current_request_id() -> str | None:
    return _request_id.get()


def accept_request_id(candidate: str | None) -> str:
    """Use the caller's id when it is safe to echo and log; otherwise make one."""
    if candidate and _VALID_REQUEST_ID.matches(candidate):
        return candidate
    return os.urandom(16).hex()  # 128 random bits, as uuid4().hex without building a UUID


def bind_request_id(request_id: str | None) -> contextvars.Token[str | None]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)
