"""structlog wiring: JSON lines in production, readable lines in development.

The request id (and, inside tasks, the task id and idempotency key) are bound
with ``structlog.contextvars`` so every line a request or task causes carries them.
"""

from __future__ import annotations

from typing import Any

import structlog

from app.tenancy.keys import secret_keys_masked

GUNICORN_LOGGERS = ("gunicorn.error", "gunicorn.access")


def _secret_keys_masked(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A secret key sent where it does not belong (``GET /v1/products/sk_…``) is not written
    to the log by any line that quotes the path (Django's "Not Found: …" warnings)."""
    event = event_dict.get("event")
    if isinstance(event, str) and "sk" in event:
        event_dict["event"] = secret_keys_masked(event)
    return event_dict


_SHARED_PROCESSORS: list[Any] = [
    _secret_keys_masked,
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def build_logging(fmt: str, level: str) -> dict[str, Any]:
    """Return a ``LOGGING`` dict and configure structlog to render through it."""
    json_lines = fmt == "json"
    renderer: Any = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    # Lines from the standard library (Django, Celery, kombu) carry exc_info as a raw tuple: in JSON
    # it must become the traceback text, or an operator gets "<traceback object at 0x…>" at 3 a.m.
    # The console renderer prints tracebacks itself.
    foreign_exceptions = [structlog.processors.format_exc_info] if json_lines else []
    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *foreign_exceptions,
                    renderer,
                ],
                "foreign_pre_chain": _SHARED_PROCESSORS,
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "celery": {"level": "INFO"},
            # gunicorn's own lines and its access log (app/access_log.py), through the same
            # renderer; configured here so the gunicorn master and Django in each worker set
            # them up alike.
            **{name: {"handlers": ["console"], "level": "INFO", "propagate": False} for name in GUNICORN_LOGGERS},
        },
    }
