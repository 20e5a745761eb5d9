"""Log lines as an operator reads them: JSON with the traceback of a failure, from any logger."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from django.conf import settings

from app.logging_config import build_logging


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The JSON configuration, writing to a buffer; the test run's own configuration after."""
    stream = io.StringIO()
    config = build_logging("json", "INFO")
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    yield stream

    logging.config.dictConfig(settings.LOGGING)


def _fail() -> None:
    raise ValueError("the broker said no")


def _last_line(stream: io.StringIO) -> dict[str, Any]:
    return json.loads(stream.getvalue().strip().splitlines()[-1])


@pytest.mark.parametrize("logger_name", ["celery.worker", "django.request"])
def test_a_standard_library_error_line_carries_its_traceback(json_lines: io.StringIO, logger_name: str) -> None:
    try:
        _fail()
    except ValueError:
        logging.getLogger(logger_name).exception("Unrecoverable error")
    line = _last_line(json_lines)
    assert line["event"] == "Unrecoverable error"
    assert line["level"] == "error"
    assert "Traceback (most recent call last)" in line["exception"]
    assert "ValueError: the broker said no" in line["exception"]
    assert "exc_info" not in line


def test_a_structlog_error_line_carries_its_traceback(json_lines: io.StringIO) -> None:
    try:
        _fail()
    except ValueError:
        structlog.get_logger("app.test").exception("task_failed", task="x")
    line = _last_line(json_lines)
    assert line["event"] == "task_failed"
    assert "ValueError: the broker said no" in line["exception"]
