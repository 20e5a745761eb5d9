"""Servers for the browser tests: the live API (gunicorn), a retailer's page server, a broken API.

The API runs as a real gunicorn process on the test database; its access log
records every request, so the tests can count what the browser sent (OPTIONS
preflights included, which Playwright does not show to the page).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from analytics.jsmin import MINIFIED
from workers.testing import ManagedProcess, subprocess_env, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveApi:
    """``gunicorn app.wsgi`` on a free port, sharing this test's database and Redis."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        handle, path = tempfile.mkstemp(prefix="sf-gunicorn-access-", suffix=".log")
        os.close(handle)
        self.access_log = Path(path)
        self.process = ManagedProcess(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "app.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                "8",
                "--worker-class",
                "gthread",
                "--access-logfile",
                path,
                "--access-logformat",
                "%(m)s %(U)s %(s)s",
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
        """(method, path, status) of every request answered so far."""
        rows = []
        for line in self.access_log.read_text().splitlines():
            method, path, status = line.split(" ")
            rows.append((method, path, int(status)))
        return rows

    def count(self, method: str, path: str = "", status: int | None = None) -> int:
        return sum(
            1 for m, p, s in self.requests() if m == method and p.startswith(path) and (status is None or s == status)
        )

    def stop(self) -> None:
        self.process.stop(timeout=5)
        self.access_log.unlink(missing_ok=True)


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


def broken_api(mode: str) -> LocalServer:
    """An API that serves the insert but fails everything else: ``error`` (500s) or ``hang`` (8 s, then 500)."""
    script = MINIFIED.read_bytes()

    def failing(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        if mode == "hang":
            time.sleep(8)
        return 500, {"Content-Type": "application/json"}, b'{"error": {"code": "internal_error"}}'

    return LocalServer(
        {
            ("GET", "/v1/js/storefabric.js"): lambda handler: (200, {"Content-Type": "text/javascript"}, script),
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
