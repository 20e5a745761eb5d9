"""structlog wiring: JSON lines in production, readable lines in development.

The request id (and, inside tasks, the task id and idempotency key) are bound
with ``structlog.contextvars`` so every line a request or task causes carries them.
"""

from __future__ import annotations

from typing import Any

import structlog

_SHARED_PROCESSORS: list[Any] = [
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
        },
    }
