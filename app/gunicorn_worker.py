"""gunicorn's threaded worker, answering the requests gunicorn itself refuses in our JSON envelope.

gunicorn parses the request line and headers before Django sees them and answers a line or
header over its limits, or one it cannot parse, with an HTML page (``414 URI Too Long``,
``431``, ``400``). Clients of this API read ``{"error": {"code", ...}}`` from every answer
(``app/errors.py``), so those refusals are written here in the same shape, with a request id
in the body, the ``X-Request-ID`` header and the access log. Anything else gunicorn refuses
(TLS, proxy protocol, an application crash) keeps gunicorn's own handling.

Depends on gunicorn's ``Worker.handle_error(req, client, addr, exc)`` hook and its parser's
exception classes (gunicorn 27); ``app/tests/test_gunicorn_limits.py`` fails if they change.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import orjson
from gunicorn.http import errors as parse_errors
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import ThreadWorker

from app.access_log import access_line
from app.errors import ERROR_CODES, error_body
from app.request_context import accept_request_id, bind_request_id, reset_request_id

# gunicorn's refusal → our error code; the first matching class wins.
REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (parse_errors.LimitRequestLine, "request_line_too_large"),
    (parse_errors.LimitRequestHeaders, "request_headers_too_large"),
    (parse_errors.InvalidRequestLine, "malformed_request"),
    (parse_errors.InvalidRequestMethod, "malformed_request"),
    (parse_errors.InvalidHTTPVersion, "malformed_request"),
    (parse_errors.InvalidHeaderName, "malformed_request"),
    (parse_errors.InvalidHeader, "malformed_request"),
    (parse_errors.ObsoleteFolding, "malformed_request"),
    (parse_errors.InvalidChunkSize, "malformed_request"),
    (parse_errors.ChunkMissingTerminator, "malformed_request"),
    (parse_errors.InvalidChunkExtension, "malformed_request"),
)


def refusal_code(exc: Exception) -> str | None:
    """Our error code for a request gunicorn refused while parsing it, or None for anything else."""
    return next((code for kind, code in REFUSALS if isinstance(exc, kind)), None)


def refusal_bytes(code: str, request_id: str) -> bytes:
    """The whole HTTP response for a refusal: status line, headers and the JSON envelope."""
    error = ERROR_CODES[code]
    token = bind_request_id(request_id)
    try:
        body = orjson.dumps(error_body(code, error.message))
    finally:
        reset_request_id(token)
    head = (
        f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-Request-ID: {request_id}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrorThreadWorker(ThreadWorker):
    """``gthread`` with parse refusals answered as JSON errors (see the module docstring)."""

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: Exception) -> None:
        code = refusal_code(exc)
        if code is None:
            super().handle_error(req, client, addr, exc)
            return
        request_id = accept_request_id(None)  # the caller's X-Request-ID was not parsed (or not trusted)
        self.log.warning("Invalid request: %s", exc)
        response = refusal_bytes(code, request_id)
        access_line(
            method=getattr(req, "method", None),
            url=None,
            status=ERROR_CODES[code].status,
            size=len(response),
            duration=timedelta(0),
            request_id=request_id,
        )
        try:
            write_nonblock(client, response)
        except OSError:
            self.log.debug("Failed to send the error answer.")
