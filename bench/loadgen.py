"""A small HTTP/1.1 keep-alive load generator (asyncio protocols; runs in its own process).

``python -m bench.loadgen --port P --requests-file F --duration S [--connections C] [--rate R] [--shoppers N]``
prints one JSON object: requests, errors, rps, p50/p99 latency (ms) and this process's CPU seconds.
Closed loop by default (each connection sends its next request when the answer arrives);
with ``--rate`` it is an open loop at that total rate, with latency measured from the
scheduled send time, so a slow server cannot hide its queueing (no coordinated omission).

With ``--shoppers N`` the k-th request sent goes out as shopper ``k mod N``: it carries
``X-Forwarded-For: <shopper_address(k mod N)>``, as a proxy of ours would add it, so a web
run with ``TRUSTED_PROXY_COUNT=1`` counts N clients, not one (the per-client rate limit
would otherwise measure one shopper). The requests file is sent in the same order, so with
N requests in it request ``n`` always comes from shopper ``n``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from loadtests.identities import shopper_address


class Connection(asyncio.Protocol):
    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ready.set_result(None)

    def send(self, request: bytes, scheduled: float) -> asyncio.Future[None]:
        self.sent_at = scheduled
        self.done = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self.done

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        total = head_end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        self.buffer = self.buffer[total:]
        self.driver.record(status, time.perf_counter() - self.sent_at)
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.driver.errors += 1
            self.done.set_result(None)


class Driver:
    def __init__(self, requests: list[bytes], shoppers: int = 0) -> None:
        self.requests = requests
        # a request's first line, and the rest: a forwarded header goes in between
        self.split = [request.split(b"\r\n", 1) for request in requests]
        self.forwarded = [f"X-Forwarded-For: {shopper_address(n)}".encode() for n in range(shoppers)]
        self.latencies: list[float] = []
        self.errors = 0
        self.sent = 0

    def request(self) -> bytes:
        sent, self.sent = self.sent, self.sent + 1
        if not self.forwarded:
            return self.requests[sent % len(self.requests)]
        line, rest = self.split[sent % len(self.split)]
        return b"\r\n".join((line, self.forwarded[sent % len(self.forwarded)], rest))

    def record(self, status: int, latency: float) -> None:
        if 200 <= status < 300:
            self.latencies.append(latency)
        else:
            self.errors += 1


async def _closed_loop(conn: Connection, driver: Driver, until: float) -> None:
    while time.perf_counter() < until and not conn.transport.is_closing():  # type: ignore[union-attr]
        await conn.send(driver.request(), time.perf_counter())


async def _open_loop(conn: Connection, driver: Driver, until: float, interval: float, offset: float) -> None:
    scheduled = time.perf_counter() + offset
    while scheduled < until and not conn.transport.is_closing():  # type: ignore[union-attr]
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await conn.send(driver.request(), scheduled)
        scheduled += interval


async def run(
    host: str, port: int, requests: list[bytes], duration: float, connections: int, rate: float, shoppers: int = 0
) -> dict:
    loop = asyncio.get_running_loop()
    driver = Driver(requests, shoppers)
    conns = []
    for _ in range(connections):
        _, conn = await loop.create_connection(lambda: Connection(driver), host, port)
        await conn.ready
        conns.append(conn)
    # One unmeasured request per connection first: gunicorn's gthread worker holds a thread
    # on a new connection until its first request arrives, which would stall an open loop.
    await asyncio.gather(*(conn.send(driver.request(), time.perf_counter()) for conn in conns))
    driver.latencies.clear()
    driver.errors = 0
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    until = started + duration
    if rate > 0:
        interval = connections / rate
        jobs = [_open_loop(c, driver, until, interval, n * interval / connections) for n, c in enumerate(conns)]
    else:
        jobs = [_closed_loop(c, driver, until) for c in conns]
    await asyncio.gather(*jobs)
    elapsed = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    for conn in conns:
        conn.transport.close()  # type: ignore[union-attr]
    latencies = sorted(driver.latencies)

    def percentile(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3) if latencies else 0.0

    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "requests": len(latencies),
        "errors": driver.errors,
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "client_cpu_s": round(cpu, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests-file", required=True, help="JSON list of raw HTTP requests (strings).")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0, help="Open loop at this many requests/s.")
    parser.add_argument("--shoppers", type=int, default=0, help="Send as this many clients (X-Forwarded-For).")
    options = parser.parse_args()
    requests = [text.encode() for text in json.loads(Path(options.requests_file).read_text())]
    result = asyncio.run(
        run(
            options.host,
            options.port,
            requests,
            options.duration,
            options.connections,
            options.rate,
            options.shoppers,
        )
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
