"""Servers for the browser tests: the live API (gunicorn), a retailer's page server, a broken API,
and the live storefront the fixtures in ``conftest.py`` build from them.

The API runs as a real gunicorn process on the test database; its access log
(JSON lines) records every request, so the tests can count what the browser sent (OPTIONS
preflights included, which Playwright does not show to the page).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from typing import Any

import orjson
from django.core.management import call_command
from playwright.sync_api import Page

from analytics.demo import DEMO_RETAILER
from analytics.jsmin import MINIFIED
from app.gunicorn_conf import GUNICORN_CONFIG
from app.tenancy.models import ApiKey, Retailer
from app.tenancy.services import origin_add
from workers.testing import ManagedProcess, subprocess_env, wait_until

PRODUCTS = 12
STORED_BATCHES = "Object.keys(localStorage).filter(k => k.startsWith('sf1:b:')).length"
ALL_PRICED = "[...document.querySelectorAll('[data-sf-sku]')].every(e => e.hasAttribute('data-sf-price'))"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveApi:
    """``gunicorn app.wsgi`` (production's configuration) on a free port, sharing this test's database
    and Redis; its JSON access log tells what the browser sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.process = ManagedProcess(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "app.wsgi:application",
                "--config",
                GUNICORN_CONFIG,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                "8",
                "--no-control-socket",
            ],
            env=subprocess_env({"DEMO_STOREFRONT": "1"}),
            name="gunicorn",
        )
        wait_until(self._answers, timeout=30, interval=0.1, message=f"gunicorn did not start:\n{self.process.output()}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.origin}/v1/js/storefabric.js", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.origin}{path}", timeout=5) as response:  # noqa: S310
            return bytes(response.read())

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path with query, status) of every request answered so far."""
        return [(line["method"], line["path"], line["status"]) for line in self.process.events("http_access")]

    def count(self, method: str, path: str = "", status: int | None = None) -> int:
        return sum(
            1 for m, p, s in self.requests() if m == method and p.startswith(path) and (status is None or s == status)
        )

    def stop(self) -> None:
        self.process.stop(timeout=5)


Route = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 answering from ``routes`` (path without query → handler)."""

    def __init__(self, routes: dict[tuple[str, str], Route]) -> None:
        self.routes = routes
        self.hits: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                path = self.path.split("?")[0]
                server.hits.append((self.command, path))
                route = server.routes.get((self.command, path))
                status, headers, body = route(self) if route else (404, {}, b"not here")
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    return  # the browser gave up (a timed-out request): nothing to answer

            do_GET = _answer  # noqa: N815 - http.server's naming
            do_POST = _answer  # noqa: N815
            do_OPTIONS = _answer  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def html_page(body: bytes) -> Route:
    return lambda handler: (200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}, body)


def insert_script() -> Route:
    script = MINIFIED.read_bytes()
    return lambda handler: (200, {"Content-Type": "text/javascript"}, script)


def broken_api(mode: str) -> LocalServer:
    """An API that serves the insert but fails everything else: ``error`` (500s) or ``hang`` (8 s, then 500)."""

    def failing(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        if mode == "hang":
            time.sleep(8)
        return 500, {"Content-Type": "application/json"}, b'{"error": {"code": "internal_error"}}'

    return LocalServer(
        {
            ("GET", "/v1/js/storefabric.js"): insert_script(),
            ("GET", "/v1/prices"): failing,
            ("POST", "/v1/events"): failing,
        }
    )


def http_error_status(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Status and headers of a GET (4xx/5xx included)."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


@dataclass
class Shopper:
    """A page in its own browser context, with what reached its console."""

    page: Page
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def uncaught(self) -> list[str]:
        return self.page_errors + [text for text in self.console_errors if "Uncaught" in text]

    def stored_batches(self) -> int:
        return int(self.page.evaluate(STORED_BATCHES))


def shown_prices(page: Page) -> dict[str, str]:
    """The text of every marked product, by SKU."""
    return dict(
        page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[data-sf-sku]')]"
            ".map(e => [e.dataset.sfSku, e.textContent]))"
        )
    )


def shopper_watch(page: Page) -> Shopper:
    watched = Shopper(page)
    page.on("pageerror", lambda error: watched.page_errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and watched.console_errors.append(message.text))
    return watched


@dataclass
class Storefront:
    """The demo retailer's page on its own origin, the live API, and a real ingest worker."""

    api: LiveApi
    pages: LocalServer
    worker: ManagedProcess
    retailer: Retailer
    key: str

    def url(self, host: str = "127.0.0.1", path: str = "/shop") -> str:
        return self.pages.url(path, host)

    def prices(self, visitor: str) -> dict[str, dict[str, Any]]:
        skus = ",".join(f"DEMO-{n:05d}" for n in range(1, PRODUCTS + 1))
        body = orjson.loads(self.api.get(f"/v1/prices?skus={skus}&key={self.key}&visitor={visitor}"))
        return {price["sku"]: price for price in body["prices"]}

    def stop(self) -> None:
        self.api.stop()
        self.pages.stop()


def storefront_start(settings: Any, tmp_path: Path, celery_worker: Callable[..., ManagedProcess]) -> Storefront:
    """Seed the demo retailer, start gunicorn and an ingest worker, serve the demo page at ``/shop``."""
    settings.DEMO_STOREFRONT = True
    call_command(
        "seed_demo", "--products", str(PRODUCTS), "--keys-file", str(tmp_path / "keys.json"), stdout=StringIO()
    )
    retailer = Retailer.objects.get(name=DEMO_RETAILER)
    key = ApiKey.objects.filter(retailer=retailer, kind="pk", expires_at__isnull=True).latest("created_at")
    pages = LocalServer({})
    origin_add(retailer=retailer, origin=f"http://127.0.0.1:{pages.port}", actor="test")
    api = LiveApi()
    worker = celery_worker(["ingest"], concurrency=1)
    pages.routes[("GET", "/shop")] = html_page(api.get("/demo/"))
    return Storefront(api, pages, worker, retailer, key.publishable_value)
