"""Real processes for tests: Celery workers and outbox relays as subprocesses.

Tests that depend on what a worker does (acknowledgement, redelivery, time
limits, kills) start real ``celery -A app worker`` processes with
:func:`start_celery_worker` and talk to them only through PostgreSQL and
Redis, exactly as production does. No eager mode anywhere.

A subprocess gets the current test database (the name pytest-django actually
created, xdist suffix included) and the test settings' Redis URLs, so parallel
xdist workers never share a queue or a row. Use ``transactional_db`` in such
tests: the worker only sees committed rows.

The root ``conftest.py`` turns these helpers into fixtures (``celery_worker``,
``outbox_relay``, ``broker_redis``); see there.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 20.0
RELAY_READY_LINE = "outbox_relay_started"


class ProcessTimeoutError(AssertionError):
    """A process did not become ready, or a condition did not hold, in time."""


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, message: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises :class:`ProcessTimeoutError` (an ``AssertionError``) after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ProcessTimeoutError(message or f"condition not met within {timeout}s")
        time.sleep(interval)


def current_database_url() -> str:
    """A ``DATABASE_URL`` for the database this test process is using right now."""
    conf = connection.settings_dict
    user = quote(conf.get("USER") or "", safe="")
    password = quote(conf.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = conf.get("HOST") or "127.0.0.1"
    port = conf.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{quote(str(conf['NAME']), safe='')}"


def subprocess_env(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process that must share this test's database and Redis."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "DJANGO_", "CELERY_")) and key != "DATABASE_URL"
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "app.settings",
            "DATABASE_URL": current_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "SECRET_KEY": settings.SECRET_KEY,
            "SECURE_SSL_REDIRECT": "0",
            "METRICS_TOKEN": settings.METRICS_TOKEN,
            "LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    return env


class ManagedProcess:
    """A child process whose output goes to a log file; stopped by PID, never by name."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str], name: str) -> None:
        self.name = name
        self.args = list(args)
        handle, path = tempfile.mkstemp(prefix=f"sf-{name}-", suffix=".log")
        self.log_path = Path(path)
        self._log = os.fdopen(handle, "wb")
        self.popen = subprocess.Popen(  # noqa: S603 - fixed argv built by this module
            self.args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The structured (JSON) log lines written so far, optionally only those with ``event == name``."""
        found = []
        for line in self.output().splitlines():
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if name is None or event.get("event") == name:
                found.append(event)
        return found

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def child_pids(self) -> list[int]:
        """PIDs of the direct children (the prefork pool processes of a worker)."""
        children: list[int] = []
        for task_dir in Path(f"/proc/{self.pid}/task").glob("*"):
            try:
                children.extend(int(pid) for pid in (task_dir / "children").read_text().split())
            except OSError:
                continue
        return sorted(set(children))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the main process only (``kill -9`` leaves pool children orphaned,
        as a real crash would; :meth:`stop` reaps them)."""
        if self.is_running():
            os.kill(self.pid, sig)

    def kill_pid(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """Signal one process of this group (e.g. a pool child from :meth:`child_pids`)."""
        if pid not in self.child_pids():
            raise ValueError(f"{pid} is not a child of {self!r}")
        os.kill(pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS, *, graceful: bool = True) -> None:
        """SIGTERM (unless not ``graceful``), then SIGKILL the whole process group after
        ``timeout``; always reaps."""
        try:
            if graceful and self.is_running():
                os.kill(self.pid, signal.SIGTERM)
                with suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=timeout)
            self._kill_group()
            self.popen.wait(timeout=5)
        finally:
            self._log.close()

    def _kill_group(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return

    def wait_for_output(self, needle: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        def seen() -> bool:
            if not self.is_running():
                raise ProcessTimeoutError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-4000:]}")
            return needle in self.output()

        try:
            wait_until(seen, timeout=timeout, interval=0.1)
        except ProcessTimeoutError as error:
            raise ProcessTimeoutError(
                f"{self.name}: {needle!r} not seen in {timeout}s:\n{self.output()[-4000:]}"
            ) from error

    def __repr__(self) -> str:
        return f"<{self.name} pid={self.pid} log={self.log_path}>"


def start_celery_worker(
    queues: Sequence[str],
    concurrency: int = 1,
    pool: str = "prefork",
    extra_env: dict[str, str] | None = None,
    *,
    include: Sequence[str] = (),
    extra_args: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> ManagedProcess:
    """Start ``celery -A app worker`` on ``queues`` and return once it logged "ready.".

    ``include`` names extra task modules to import (test-only tasks live in
    ``<app>/tests/``, which autodiscovery does not load).
    """
    node = f"test-{uuid.uuid4().hex[:8]}@%h"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "app",
        "worker",
        "-Q",
        ",".join(queues),
        "-c",
        str(concurrency),
        "-P",
        pool,
        "-n",
        node,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "-l",
        "INFO",
    ]
    for module in include:
        args += ["-I", module]
    args += list(extra_args)
    worker = ManagedProcess(args, env=subprocess_env(extra_env), name="celery-worker")
    try:
        worker.wait_for_output(" ready.", timeout=ready_timeout)
    except BaseException:
        worker.stop(timeout=2)
        raise
    return worker


@contextmanager
def celery_worker(
    queues: Sequence[str],
    concurrency: int = 1,
    pool: str = "prefork",
    extra_env: dict[str, str] | None = None,
    **options: Any,
) -> Iterator[ManagedProcess]:
    """Context manager around :func:`start_celery_worker`; always stops the worker."""
    worker = start_celery_worker(queues, concurrency, pool, extra_env, **options)
    try:
        yield worker
    finally:
        worker.stop()


def start_manage_command(
    command: str, *args: str, extra_env: dict[str, str] | None = None, ready_line: str | None = None
) -> ManagedProcess:
    """Start ``python manage.py <command> <args>`` (e.g. the outbox relay) as a child process."""
    process = ManagedProcess(
        [sys.executable, "manage.py", command, *args], env=subprocess_env(extra_env), name=f"manage-{command}"
    )
    if ready_line:
        try:
            process.wait_for_output(ready_line)
        except BaseException:
            process.stop(timeout=2)
            raise
    return process


def start_outbox_relay(
    *args: str, extra_env: dict[str, str] | None = None, include: Sequence[str] = ()
) -> ManagedProcess:
    """Start ``manage.py outbox_relay`` and return once it says it is running.

    ``include`` names extra task modules (``CELERY_IMPORTS``) so the relay can route them.
    """
    env = {**(extra_env or {}), **({"CELERY_IMPORTS": ",".join(include)} if include else {})}
    return start_manage_command("outbox_relay", *args, extra_env=env, ready_line=RELAY_READY_LINE)


WEB_LISTENING = re.compile(r"Listening at: (http://127\.0\.0\.1:\d+)")


class WebServer:
    """A ``gunicorn`` web process of the test's own, on a port the kernel chose."""

    def __init__(self, *, extra_env: dict[str, str] | None = None) -> None:
        args = [sys.executable, "-m", "gunicorn", "app.wsgi:application", "--bind", "127.0.0.1:0"]
        args += ["--workers", "1", "--worker-class", "gthread", "--threads", "2", "--timeout", "30"]
        self.process = ManagedProcess(args, env=subprocess_env(extra_env), name="gunicorn")
        try:
            self.process.wait_for_output("Booting worker")
            listening = WEB_LISTENING.search(self.process.output())
            if listening is None:
                raise ProcessTimeoutError(f"gunicorn did not say where it listens:\n{self.process.output()[-2000:]}")
        except BaseException:
            self.process.stop(timeout=2)
            raise
        self.url = listening.group(1)

    def get(self, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, str]:
        """``GET path``: the status and the body as text (an error status is returned, not raised)."""
        request = urllib.request.Request(self.url + path, headers=headers or {})  # noqa: S310 - http to 127.0.0.1
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


PRIVATE_REDIS_PORTS = range(6391, 6400)


def _free_port(candidates: Sequence[int]) -> int:
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {candidates[0]}-{candidates[-1]} for a private redis-server")


class PrivateRedis:
    """A ``redis-server`` of the test's own, to stop, kill and restart.

    Without persistence by default; ``persistent=True`` gives it an append-only file
    (``appendfsync always``) in its own temporary folder, as a production broker has, so
    :meth:`shutdown` and :meth:`start` stop and start it with its data."""

    def __init__(self, port: int, *, persistent: bool = False) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._folder = tempfile.TemporaryDirectory(prefix="sf-redis-") if persistent else None
        self.process = self._start()

    def _start(self) -> ManagedProcess:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self._folder is None:
            args += ["--appendonly", "no"]
        else:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", self._folder.name]
        process = ManagedProcess([*args, "--maxmemory-policy", "noeviction"], env=dict(os.environ), name="redis")
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(answers, timeout=10, message=f"redis-server on {self.port} did not start")
        return process

    def kill(self) -> None:
        """``kill -9``: the server and everything it held in memory are gone."""
        self.process.kill(signal.SIGKILL)
        self.process.wait(timeout=10)

    def shutdown(self) -> None:
        """A clean stop (``SIGTERM``: a persistent server writes its file first)."""
        self.process.stop(graceful=True)

    def start(self) -> None:
        """Start again on the same port, with what its file holds (nothing without persistence)."""
        self.process = self._start()

    def restart(self) -> None:
        """Start again on the same port, empty unless persistent."""
        self.process.stop(graceful=False)
        self.process = self._start()

    def stop(self) -> None:
        self.process.stop(graceful=False)
        if self._folder is not None:
            self._folder.cleanup()


@contextmanager
def private_redis_server(*, persistent: bool = False) -> Iterator[PrivateRedis]:
    """A private ``redis-server`` on a free port in 6391-6399, always stopped afterwards."""
    server = PrivateRedis(_free_port(PRIVATE_REDIS_PORTS), persistent=persistent)
    try:
        yield server
    finally:
        server.stop()


def broker_client() -> redis.Redis:
    """A client for the broker Redis database of this test process."""
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def broker_flush() -> None:
    """Empty this test process's broker database (queues, unacked set, counters)."""
    broker_client().flushdb()


class ProcessGroup:
    """Processes started during one test; :meth:`stop_all` stops each by PID."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    def add(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        """Kill every process group at once: a test's end needs no graceful shutdown."""
        for process in reversed(self.processes):
            process.stop(graceful=False)
        self.processes.clear()


PROCFILE_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def procfile_command(name: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The argv and the extra environment of Procfile process ``name``, as a shell would
    expand its ``${VAR:-default}`` from ``env``; ``celery`` and ``python`` run on this interpreter."""
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line)
    words = shlex.split(lines[name])
    assignments = {}
    while words and re.fullmatch(r"\w+=\S*", words[0]):
        key, _, value = words.pop(0).partition("=")
        assignments[key] = value
    expanded = [
        PROCFILE_VARIABLE.sub(lambda match: env.get(match["name"]) or match["default"] or "", word) for word in words
    ]
    if expanded[0] in ("celery", "python"):
        expanded[:1] = [sys.executable, "-m", "celery"] if expanded[0] == "celery" else [sys.executable]
    return expanded, assignments


def start_procfile_worker(name: str, extra_env: dict[str, str] | None = None) -> ManagedProcess:
    """Start the Procfile's Celery worker ``name`` with its own options; return once it is ready."""
    env = subprocess_env(extra_env)
    args, assignments = procfile_command(name, env)
    worker = ManagedProcess(args, env={**env, **assignments}, name=name)
    try:
        worker.wait_for_output(" ready.")
    except BaseException:
        worker.stop(timeout=2)
        raise
    return worker
