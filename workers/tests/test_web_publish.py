"""Publishing from a web request: the broker takes it, or a 503 comes fast."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from app.errors import error_response
from workers import publish
from workers.broker import queue_peek
from workers.publish import BrokerUnavailableError, publish_or_unavailable
from workers.testing import private_redis_server
from workers.tests import fault_tasks


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_published_message_waits_in_its_queue_with_key_and_sent_at(broker_redis):
    task_id = publish_or_unavailable(fault_tasks.increment, idempotency_key="web-1", sleep_ms=0)

    message = queue_peek("default")
    assert message["headers"]["id"] == task_id
    assert message["headers"]["task"] == "workers_tests.increment"
    assert "'idempotency_key': 'web-1'" in message["headers"]["kwargsrepr"]
    assert abs(message["headers"]["sent_at"] - time.time()) < 5


def test_unreachable_broker_is_a_fast_503_with_retry_after(settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_dead_port()}/0"
    publish.web_publish_reset()

    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as raised:
        publish_or_unavailable(fault_tasks.increment, idempotency_key="web-2")

    assert time.monotonic() - started < 1.0
    response = error_response(raised.value)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b'"code":"broker_unavailable"' in response.content


@pytest.mark.faults
@pytest.mark.xdist_group("faults")
def test_broker_that_stops_answering_is_a_503_within_the_publish_timeout(settings):
    with private_redis_server() as server:
        settings.CELERY_BROKER_URL = server.url
        publish.web_publish_reset()
        publish_or_unavailable(fault_tasks.increment, idempotency_key="web-3")  # connected and working
        server.process.kill(signal.SIGSTOP)  # the host hangs: TCP stays open, nothing answers
        try:
            started = time.monotonic()
            with pytest.raises(BrokerUnavailableError):
                publish_or_unavailable(fault_tasks.increment, idempotency_key="web-4")
            assert time.monotonic() - started < settings.CELERY_WEB_PUBLISH_TIMEOUT + 0.5
        finally:
            server.process.kill(signal.SIGCONT)
