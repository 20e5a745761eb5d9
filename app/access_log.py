"""gunicorn's access log: one structured line per request, with its request id and no secrets.

gunicorn's own access line is a printf format over its "atoms"; it can neither render JSON
(LOG_FORMAT) nor mask a value inside the query string. A secret key sent as ``?key=sk_…`` is
refused (400 ``secret_key_in_url``) but the URL still reaches the log: every ``key`` value,
and any secret key anywhere in the URL, is cut to the prefix that names the key
(``app.tenancy.keys.key_prefix``, the part the admin shows) before it is written. Other log
lines (Django's "Not Found: /path") are masked by ``app.logging_config``.
"""

from __future__ import annotations

import importlib
import logging.config
import os
import re
from datetime import timedelta
from typing import Any

import structlog
from gunicorn.glogging import Logger

from app.tenancy.keys import MASK, key_prefix, secret_keys_masked

# ``key=`` values (the query key and a second or third one: ``?key=sk_…&key=pk_…``).
_KEY_VALUE = re.compile(r"(?P<name>(?:^|[?&;])key=)(?P<value>[^&;#]+)")

access = structlog.get_logger("gunicorn.access")


def url_mask(url: str) -> str:
    """``url`` (path and query) with every key value and secret-key token cut to its prefix."""
    masked = secret_keys_masked(url)
    return _KEY_VALUE.sub(lambda found: found["name"] + key_prefix(found["value"]) + MASK, masked)


def access_line(
    *, method: str | None, url: str | None, status: int, size: int, duration: timedelta, request_id: str | None
) -> None:
    """Write the one access-log line of a request (answered by the app or refused by gunicorn)."""
    access.info(
        "http_access",
        method=method,
        path=url_mask(url) if url else None,
        status=status,
        bytes=size,
        duration_ms=round(duration.total_seconds() * 1000, 1),
        request_id=request_id,
    )


def _header(headers: Any, name: str) -> str | None:
    pairs = headers.items() if hasattr(headers, "items") else headers
    return next((value for key, value in pairs if key.lower() == name), None)


class GunicornLogger(Logger):
    """gunicorn's logger, writing through the ``LOGGING`` of the Django settings (structlog, LOG_FORMAT),
    with the access line above instead of gunicorn's format string."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        settings = importlib.import_module(os.environ.get("DJANGO_SETTINGS_MODULE") or "app.settings")
        logging.config.dictConfig(settings.LOGGING)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        url = req.path + (f"?{req.query}" if req.query else "")
        access_line(
            method=req.method,
            url=url,
            status=int(str(resp.status).split(" ", 1)[0]),
            size=int(getattr(resp, "sent", 0) or 0),
            duration=request_time,
            request_id=_header(resp.headers, "x-request-id"),
        )
