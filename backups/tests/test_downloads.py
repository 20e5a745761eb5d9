"""Downloads: one byte range (206, 416, anything else ignored), and the per-host cap on downloads
streaming at once (503 ``downloads_busy`` with Retry-After) that leaves web threads to the price API.
Through the real gunicorn, with curl as an independent client."""

from __future__ import annotations

import os
import socket
import subprocess
from urllib.parse import urlsplit

import pytest

from backups.downloads import byte_range
from backups.models import Backup
from backups.services import backup_start
from backups.tests.conftest import backup_env, source_of, write
from backups.tests.pipeline import outbox_drain
from workers.testing import wait_until

SIZE = 3_000_000  # more than one chunk (FastCDC, ~1 MiB average)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, 999)),
        ("bytes=-10", (990, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        (None, None),
        ("bytes=0-9,20-29", None),  # several ranges: the whole file
        ("bytes=9-0", None),  # invalid: ignored
        ("items=0-9", None),
        ("bytes=-", None),
    ],
)
def test_a_single_byte_range_is_read_and_anything_else_is_ignored(header, expected) -> None:
    assert byte_range(header, 1000) == expected


def stored(tenant, backup_dirs) -> tuple[Backup, bytes]:
    content = os.urandom(SIZE)
    write(source_of(backup_dirs, tenant.retailer.id), "big.bin", content)
    backup, _ = backup_start(retailer_id=tenant.retailer.id)
    outbox_drain()
    backup.refresh_from_db()
    assert backup.state == Backup.State.DONE
    return backup, content


def test_a_range_answers_206_with_those_bytes_across_chunks_and_past_the_end_416(alice, backup_dirs) -> None:
    backup, content = stored(alice, backup_dirs)
    url = f"/v1/backups/{backup.pk}/files/big.bin"

    def get(header: str) -> tuple[object, bytes]:
        response = alice.client().get(url, headers={"Range": header})
        return response, b"".join(response.streaming_content) if response.streaming else response.content

    part, part_body = get("bytes=1000000-2500000")
    tail, tail_body = get("bytes=-7")
    past, _ = get(f"bytes={SIZE}-")
    whole, whole_body = get("bytes=0-1,5-6")

    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 1000000-2500000/{SIZE}"
    assert part["Content-Length"] == "1500001"
    assert part_body == content[1_000_000:2_500_001]
    assert (tail.status_code, tail_body) == (206, content[-7:])
    assert past.status_code == 416
    assert past["Content-Range"] == f"bytes */{SIZE}"
    assert past.json()["error"]["code"] == "range_not_satisfiable"
    assert whole.status_code == 200
    assert whole["Accept-Ranges"] == "bytes"
    assert whole_body == content


def test_past_the_cap_a_download_is_503_with_retry_after_until_one_ends(alice, backup_dirs, settings) -> None:
    settings.BACKUP_DOWNLOADS_MAX = 1
    backup, content = stored(alice, backup_dirs)
    url = f"/v1/backups/{backup.pk}/files/big.bin"

    streaming = alice.client().get(url)
    refused = alice.client().get(url)
    assert b"".join(streaming.streaming_content) == content  # the first ends: its slot is free
    after = alice.client().get(url)

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "downloads_busy"
    assert refused["Retry-After"] == "2"
    assert after.status_code == 200
    assert b"".join(after.streaming_content) == content


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-s", "-S", "--max-time", "20", *args], capture_output=True, timeout=30, check=True)


@pytest.mark.timeout(90)
def test_through_gunicorn_curl_gets_a_range_and_a_held_download_leaves_the_prices_their_thread(
    alice, backup_dirs, web_server
) -> None:
    # More than the kernel's socket buffers hold (4 MiB of send buffer at most, by default), so
    # a client that stops reading keeps its download streaming.
    write(source_of(backup_dirs, alice.retailer.id), "huge.bin", os.urandom(16 * 1024 * 1024))
    backup, content = stored(alice, backup_dirs)
    server = web_server(extra_env=backup_env(backup_dirs, BACKUP_DOWNLOADS_MAX="1"))  # 1 process, 2 threads
    url = f"{server.url}/v1/backups/{backup.pk}/files/big.bin"
    auth = f"Authorization: Bearer {alice.secret_key}"

    ranged = curl("-H", auth, "-r", "123456-1234567", "-D", "-", "-o", "/dev/null", url).stdout.decode()
    body = curl("-H", auth, "-r", "123456-1234567", url).stdout
    past = curl("-H", auth, "-r", f"{SIZE + 1}-", "-w", "%{http_code}", "-o", "/dev/null", url).stdout
    # A client that asks for the file and reads only its headers holds a slot (and a thread).
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    held.settimeout(10)
    held.connect((host, port))
    path = f"/v1/backups/{backup.pk}/files/huge.bin"
    held.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n\r\n".encode())
    assert held.recv(64).startswith(b"HTTP/1.1 200")
    busy = curl("-H", auth, "-D", "-", "-o", "/dev/null", url).stdout.decode()
    health = server.get("/healthz")
    held.close()
    free = wait_until(
        lambda: curl("-H", auth, "-w", "%{http_code}", "-o", "/dev/null", url).stdout == b"200",
        timeout=20,
        interval=0.2,
        message="the slot was freed when the client went away",
    )

    assert ranged.startswith("HTTP/1.1 206")
    assert f"content-range: bytes 123456-1234567/{SIZE}" in ranged.lower()
    assert body == content[123456:1234568]
    assert past == b"416"
    assert busy.startswith("HTTP/1.1 503")
    assert "retry-after: 2" in busy.lower()
    assert health[0] == 200
    assert free
