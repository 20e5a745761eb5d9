"""Fakes for the load tests' checks: a Storefabric that answers /metrics and the analytics summary, and a clock.

The fake service answers in-process (``service.get``, in ``service_get``'s place)
or over loopback HTTP (the ``fake_service_url`` fixture), from the same state.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from loadtests.catalog import Retailer, retailers_load
from loadtests.service_http import ServiceHttpError

METRICS_TOKEN = "metrics-token"
ALICE = {"retailer": "Alice", "publishable_key": "pk_a", "secret_key": "sk_a", "origin": "https://alice.example"}
BOB = {"retailer": "Bob", "publishable_key": "pk_b", "secret_key": "sk_b", "origin": "https://bob.example"}


@dataclass
class FakeClock:
    """``time.monotonic`` and ``time.sleep`` for a check: sleeping moves the clock, at once."""

    now: float = 1000.0
    slept: float = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@dataclass
class FakeService:
    """Successive readings: each GET takes the next one, and the last one repeats."""

    depths: list[int] = field(default_factory=lambda: [0])
    events: dict[str, list[int]] = field(default_factory=dict)  # secret key → the summary's event totals
    metrics_unavailable: int = 0  # the first N reads of /metrics answer 503
    token: str = METRICS_TOKEN
    paths: list[str] = field(default_factory=list)

    def answer(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        self.paths.append(path)
        bearer = headers.get("Authorization", "").removeprefix("Bearer ")
        if path == "/metrics":
            return self._metrics(bearer)
        if path.startswith("/v1/analytics/summary?since="):
            if bearer not in self.events:
                return 401, b'{"error": {"code": "invalid_key"}}'
            totals = {"page_view": _next(self.events[bearer]), "product_view": 0, "add_to_cart": 0, "purchase": 0}
            return 200, json.dumps({"totals": totals}).encode()
        return 404, b"{}"

    def _metrics(self, bearer: str) -> tuple[int, bytes]:
        if bearer != self.token:
            return 401, b'{"error": {"code": "invalid_key"}}'
        if self.metrics_unavailable:
            self.metrics_unavailable -= 1
            return 503, b"broker restarting"
        depth = _next(self.depths)
        samples = (
            f'storefabric_queue_depth{{queue="pricing"}} 0.0\nstorefabric_queue_depth{{queue="ingest"}} {depth}.0\n'
        )
        return 200, samples.encode()

    def get(self, host: str, path: str, headers: dict[str, str], timeout: float = 10.0) -> bytes:
        """Stands in for ``service_http.service_get``."""
        status, body = self.answer(path, headers)
        if status >= 400:
            raise ServiceHttpError(f"GET {path} answered {status}: {body[:300]!r}", status)
        return body


def _next(readings: list[int]) -> int:
    return readings.pop(0) if len(readings) > 1 else readings[0]


@pytest.fixture
def fake_service() -> FakeService:
    return FakeService()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keys_path(tmp_path: Path) -> Path:
    """A keys file as ``seed_demo --keys-file`` writes it, for Alice and Bob."""
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([{**ALICE, "skus": ["A-1", "A-2"]}, {**BOB, "skus": ["B-1"]}]))
    return path


@pytest.fixture
def retailers(keys_path: Path) -> list[Retailer]:
    return retailers_load(keys_path)


@pytest.fixture
def fake_service_url(fake_service: FakeService) -> Iterator[str]:
    """The fake service on a loopback port, for code that makes real HTTP calls."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = fake_service.answer(self.path, dict(self.headers.items()))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
