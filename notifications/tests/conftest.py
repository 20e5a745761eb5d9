"""Fixtures of the notifications tests: a loopback-only network guard, a retailer's webhook
endpoint (a real HTTP server on 127.0.0.1) and an SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from app import outbound_http


def _refuse_non_loopback(address: Any) -> None:
    if not isinstance(address, tuple):
        return  # AF_UNIX
    host = str(address[0]).split("%", 1)[0]
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        pytest.fail(f"a test tried to connect to {address}: tests talk to loopback only")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test on any attempt of this process to connect to a non-loopback address."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        _refuse_non_loopback(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _refuse_non_loopback(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def resolver() -> Iterator[Callable[[dict[str, list[str]]], None]]:
    """``resolver({"hooks.example": ["10.0.0.1"]})``: the outbound client's DNS answers for this test."""

    def install(answers: dict[str, list[str]]) -> None:
        def resolve(host: str, port: int) -> list[str]:
            if host in answers:
                return answers[host]
            raise socket.gaierror(socket.EAI_NONAME, host)

        outbound_http.resolver_set(resolve)

    yield install
    outbound_http.resolver_set(None)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    client: tuple[str, int] = ("", 0)  # the connection it came on


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0
    hang_up: bool = False  # close the kept-alive connection after this answer, without saying so (idle timeout)


class EndpointServer:
    """A retailer's webhook endpoint: records every request; ``replies`` (a queue, then
    ``default``) says how to answer. HTTP/1.1 with keep-alive, as a real endpoint's server is,
    unless ``protocol`` says ``HTTP/1.0`` (a connection per request)."""

    def __init__(self, protocol: str = "HTTP/1.1") -> None:
        self.received: list[Received] = []
        self.replies: list[Reply] = []
        self.default = Reply()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = protocol
            disable_nagle_algorithm = True  # as a real server does on kept-alive connections

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server.lock:
                    server.received.append(Received(self.path, headers, body, time.time(), self.client_address))
                    reply = server.replies.pop(0) if server.replies else server.default
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    self.close_connection = True  # the client gave up (timeout test)
                if reply.hang_up:
                    self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def connections(self) -> int:
        return len({request.client for request in self.received})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint_server() -> Iterator[Callable[..., EndpointServer]]:
    servers: list[EndpointServer] = []

    def start(protocol: str = "HTTP/1.1") -> EndpointServer:
        servers.append(EndpointServer(protocol))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


class SmtpHandler:
    """Records accepted messages; ``answers`` (a queue) makes the next RCPT or DATA fail."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.rcpt_answers: list[str] = []
        self.rcpt_seconds = 0.0  # how long the server takes over each RCPT (before it has the message)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd hook names)
        self, server: Any, session: Any, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt_seconds:
            await asyncio.sleep(self.rcpt_seconds)
        if self.rcpt_answers:
            return self.rcpt_answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: Any, session: Any, envelope: Envelope
    ) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    handler: SmtpHandler
    port: int

    def message_ids(self) -> list[str]:
        ids = []
        for envelope in self.handler.messages:
            content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
            for line in content.split(b"\r\n"):
                if line.lower().startswith(b"message-id:"):
                    ids.append(line.split(b":", 1)[1].strip().decode())
        return ids


@contextmanager
def smtp_serving(handler: Any, settings: Any) -> Iterator[int]:
    """aiosmtpd on a free loopback port with ``handler``, and Django's SMTP backend pointed at
    it; yields the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[SmtpServer]:
    handler = SmtpHandler()
    with smtp_serving(handler, settings) as port:
        yield SmtpServer(handler=handler, port=port)
