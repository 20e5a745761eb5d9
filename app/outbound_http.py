"""The one HTTP client for calls out of the system (webhooks today).

Rules, all here so no caller can forget one:

* connect timeout 5 s, 15 s in total for the whole exchange (a watchdog closes the
  socket at the deadline, so a server trickling a byte a second cannot hold a worker);
* the response body is read up to ``BODY_LIMIT`` bytes, the rest is dropped;
* redirects are not followed (``http.client`` never follows them; a 3xx is an answer);
* a User-Agent naming Storefabric;
* connections only to globally routable addresses (``ipaddress`` ``is_global``:
  loopback, private, link-local, shared 100.64/10, the metadata service and
  IPv4-mapped IPv6 are refused), or to a network of ``WEBHOOK_ALLOWED_NETWORKS``.
  The check runs at connect time on the addresses DNS answered, and the socket
  connects to the checked address itself, so an answer that changes after an
  endpoint was validated cannot reach a refused address.

The resolver is injectable (``resolver=``, or :func:`resolver_set` in tests), so the
guard is tested with DNS answers naming refused addresses and no traffic leaves loopback.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.utils.module_loading import import_string

from app.deadlines import deadline_call

BODY_LIMIT = 4096
USER_AGENT = "Storefabric-Webhooks/1.0 (+https://storefabric.dev/webhooks)"

Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address DNS gives for ``host``, in the order ``getaddrinfo`` answers."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def loopback_resolver(host: str, port: int) -> list[str]:
    """The test runs' resolver (``WEBHOOK_RESOLVER`` in ``app.settings_test``): ``localhost`` is
    127.0.0.1 and every other name is unknown, so no test, worker or fuzzed request asks real DNS."""
    if host.lower().rstrip(".") == "localhost":
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, f"{host} is not resolved in tests")


_override: list[Resolver | None] = [None]


def resolver_set(resolver: Resolver | None) -> None:
    """Replace the process's resolver (tests); ``None`` goes back to ``WEBHOOK_RESOLVER``."""
    _override[0] = resolver


def current_resolver() -> Resolver:
    resolver: Resolver = _override[0] or import_string(settings.WEBHOOK_RESOLVER)
    return resolver


class OutboundError(Exception):
    """The request did not get an HTTP answer. ``kind``: timeout, connect, tls, dns, private_address."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class PrivateAddressError(OutboundError):
    def __init__(self, message: str) -> None:
        super().__init__("private_address", message)


@dataclass
class OutboundResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    duration_ms: int
    truncated: bool = False
    peer: str = field(default="")


@cache
def _allowed_networks(networks: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(network) for network in networks)


def address_allowed(address: str) -> bool:
    """True for a globally routable address or one inside ``WEBHOOK_ALLOWED_NETWORKS``.
    An IPv4-mapped IPv6 address is never global, and no allowance names IPv6 by default."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_global:
        return True
    return any(ip in network for network in _allowed_networks(tuple(settings.WEBHOOK_ALLOWED_NETWORKS)))


def host_addresses(host: str, port: int, resolver: Resolver | None = None) -> list[str]:
    """The addresses of ``host`` (an IP literal is its own answer); raises ``OutboundError('dns')``."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        addresses = (resolver or current_resolver())(host, port)
    except OSError as error:
        raise OutboundError("dns", f"{host} does not resolve: {error}") from error
    if not addresses:
        raise OutboundError("dns", f"{host} does not resolve")
    return addresses


def host_check(host: str, port: int, resolver: Resolver | None = None) -> None:
    """Raise :class:`PrivateAddressError` if any address of ``host`` is refused (used when an
    endpoint is created: one refused answer is enough to refuse the URL)."""
    refused = [address for address in host_addresses(host, port, resolver) if not address_allowed(address)]
    if refused:
        raise PrivateAddressError(f"{host} resolves to {', '.join(refused)}, which is not a public address")


def _connect(host: str, port: int, deadline: float, resolver: Resolver | None) -> socket.socket:
    addresses = host_addresses(host, port, resolver)
    allowed = [address for address in addresses if address_allowed(address)]
    if not allowed:
        raise PrivateAddressError(f"{host} resolves only to refused addresses ({', '.join(addresses)})")
    last: OSError | None = None
    for address in allowed:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(min(settings.OUTBOUND_HTTP_CONNECT_TIMEOUT, remaining))
        try:
            sock.connect((address, port))
        except OSError as error:
            sock.close()
            last = error
            continue
        # As http.client's own connect does: its headers and body go out as two writes, and
        # Nagle's algorithm would hold the body back until the headers were acknowledged.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    if isinstance(last, TimeoutError):
        raise OutboundError("timeout", f"connecting to {host}:{port} timed out")
    raise OutboundError("connect", f"cannot connect to {host}:{port}: {last}")


class Session:
    """POSTs one after another over one kept-alive connection per origin (scheme, host, port).

    A drain sends a slot of deliveries to one endpoint in turn: reusing the connection spares a
    TCP connect per delivery (and a TLS handshake, against a real endpoint) on both sides. The
    connection is made as :func:`post` makes one (the address checked, then connected to), and
    dropped when the server says it will close it, after a body longer than ``BODY_LIMIT`` (the
    rest is not read), after any failure, and by :meth:`close`. A request on a reused
    connection that the server had closed meanwhile (its idle timeout: refused on send, or
    closed before a status line) is sent once more on a new connection right away."""

    def __init__(self, resolver: Resolver | None = None) -> None:
        self._resolver = resolver
        self._origin: tuple[str, str, int] | None = None
        self._connection: http.client.HTTPConnection | None = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection, self._origin = None, None

    def post(
        self, url: str, *, body: bytes, headers: Mapping[str, str], total_timeout: float | None = None
    ) -> OutboundResponse:
        """POST ``body`` to ``url`` under the rules above; raises :class:`OutboundError` when no
        HTTP answer came (timeout, refused address, connection or TLS failure)."""
        total_timeout = total_timeout or settings.OUTBOUND_HTTP_TOTAL_TIMEOUT
        started = time.monotonic()
        deadline = started + total_timeout
        parts = urlsplit(url)
        host = (parts.hostname or "").encode("idna").decode("ascii")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if self._origin != (parts.scheme, host, port):
            self.close()
        timed_out = f"no complete answer from {host} within {total_timeout:.0f} s"
        try:
            return self._send(parts, host, port, body, headers, started, deadline)
        except OutboundError:
            self.close()
            raise
        except TimeoutError as error:
            self.close()
            raise OutboundError("timeout", timed_out) from error
        except ssl.SSLError as error:
            self.close()
            raise OutboundError("tls", f"TLS with {host} failed: {error}") from error
        except (OSError, http.client.HTTPException) as error:
            self.close()
            if time.monotonic() >= deadline:  # the watchdog shut the socket
                raise OutboundError("timeout", timed_out) from error
            raise OutboundError("connect", f"{host}: {type(error).__name__}: {error}") from error
        except BaseException:
            self.close()  # cut off mid-exchange (a task's time limit): the connection is in no known state
            raise

    def _send(
        self,
        parts: SplitResult,
        host: str,
        port: int,
        body: bytes,
        headers: Mapping[str, str],
        started: float,
        deadline: float,
    ) -> OutboundResponse:
        if self._connection is not None:
            try:
                return self._exchange(parts, body, headers, started, deadline)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if time.monotonic() >= deadline:
                    raise  # the watchdog shut it at the deadline: a timeout, not an idle close
                self.close()  # closed by the server while idle: sent again on a new connection
        self._open(parts.scheme, host, port, deadline)
        return self._exchange(parts, body, headers, started, deadline)

    def _open(self, scheme: str, host: str, port: int, deadline: float) -> None:
        sock = _connect(host, port, deadline, self._resolver)
        if scheme == "https":
            watchdog = deadline_call(deadline - time.monotonic(), partial(_shutdown, sock))
            try:
                sock = _tls_wrap(sock, host)
            except BaseException:
                sock.close()
                raise
            finally:
                watchdog.cancel()
        connection = http.client.HTTPConnection(host, port)
        connection.sock = sock  # connected to the checked address: http.client must never connect itself
        connection.auto_open = 0
        self._connection, self._origin = connection, (scheme, host, port)

    def _exchange(
        self, parts: SplitResult, body: bytes, headers: Mapping[str, str], started: float, deadline: float
    ) -> OutboundResponse:
        connection = self._connection
        sock = connection.sock if connection is not None else None
        if connection is None or sock is None:
            raise http.client.RemoteDisconnected("no open connection")
        peer = str(sock.getpeername()[0])
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        watchdog = deadline_call(deadline - time.monotonic(), partial(_shutdown, sock))
        try:
            response = _request(connection, parts, body, headers)
            data = response.read(BODY_LIMIT + 1)
        finally:
            watchdog.cancel()
        truncated = len(data) > BODY_LIMIT
        if truncated or response.will_close or not response.isclosed():
            self.close()  # the server closes it, or the rest of the body is still on the wire
        return OutboundResponse(
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=data[:BODY_LIMIT],
            duration_ms=round((time.monotonic() - started) * 1000),
            truncated=truncated,
            peer=peer,
        )


def post(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    resolver: Resolver | None = None,
    total_timeout: float | None = None,
) -> OutboundResponse:
    """One POST on a connection of its own (:meth:`Session.post`)."""
    with Session(resolver) as session:
        return session.post(url, body=body, headers=headers, total_timeout=total_timeout)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _tls_wrap(sock: socket.socket, host: str) -> socket.socket:
    context = ssl.create_default_context()
    return context.wrap_socket(sock, server_hostname=host)


def _request(
    connection: http.client.HTTPConnection, parts: SplitResult, body: bytes, headers: Mapping[str, str]
) -> http.client.HTTPResponse:
    path = parts.path or "/"
    target = f"{path}?{parts.query}" if parts.query else path
    connection.putrequest("POST", target, skip_accept_encoding=True)
    for name, value in {"User-Agent": USER_AGENT, "Content-Type": "application/json", **headers}.items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    return connection.getresponse()
