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

from app.gunicorn_conf import GUNICORN_CONFIG

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
            self.kill_group()
            self.popen.wait(timeout=5)
        finally:
            self._log.close()

    def kill_group(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group: a worker's main process and its pool children
        together, as a lost host or an OOM-killed container loses them."""
        try:
            os.killpg(self.pid, sig)
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
    command_prefix: Sequence[str] = (),
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> ManagedProcess:
    """Start ``celery -A app worker`` on ``queues`` and return once it logged "ready.".

    ``include`` names extra task modules to import (test-only tasks live in
    ``<app>/tests/``, which autodiscovery does not load). ``command_prefix`` runs the worker
    under another program (``["setpriv", "--reuid=nobody", …]``: an unprivileged worker).
    """
    node = f"test-{uuid.uuid4().hex[:8]}@%h"
    args = [
        *command_prefix,
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


def start_celery_beat(extra_env: dict[str, str] | None = None) -> ManagedProcess:
    """Start ``celery -A app beat`` (the project's schedule, a schedule file of its own) and
    return once it is running."""
    schedule = Path(tempfile.mkdtemp(prefix="sf-beat-")) / "schedule"
    beat = ManagedProcess(
        [sys.executable, "-m", "celery", "-A", "app", "beat", "--schedule", str(schedule), "-l", "INFO"],
        env=subprocess_env(extra_env),
        name="celery-beat",
    )
    try:
        beat.wait_for_output("beat: Starting")
    except BaseException:
        beat.stop(timeout=2)
        raise
    return beat


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

    def __init__(self, *, extra_env: dict[str, str] | None = None, threads: int = 2) -> None:
        # Production's configuration (app/gunicorn_conf.py: limits, worker class, access log),
        # on a free loopback port, one process, no control socket (else $HOME/.gunicorn/gunicorn.ctl,
        # which every gunicorn on the machine takes over).
        args = [sys.executable, "-m", "gunicorn", "app.wsgi:application", "--config", GUNICORN_CONFIG]
        args += ["--bind", "127.0.0.1:0", "--workers", "1", "--threads", str(threads), "--no-control-socket"]
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
        status, _, body = self.send("GET", path, headers=headers, timeout=timeout)
        return status, body

    def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, str], str]:
        """One request: the status, the response headers (lower-case names) and the body as text."""
        request = urllib.request.Request(  # noqa: S310 - http to 127.0.0.1
            self.url + path, data=body, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, _lower(response.headers), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, _lower(error.headers), error.read().decode()


def _lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


PRIVATE_REDIS_PORTS = range(6391, 6400)


def _free_port(candidates: Sequence[int]) -> int:
    """The first free port of this pytest-xdist worker's share of ``candidates`` (gwN takes every
    N-th): two workers checking the same port at once would both find it free."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = list(candidates)[int(worker) % count :: count] if worker.isdigit() and count > 1 else candidates
    for port in share:
        with socket.socket() as sock:
            # as redis-server and PostgreSQL bind: a port a stopped server left in TIME_WAIT is free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port of {list(share)} for a private server")


class PrivateRedis:
    """A ``redis-server`` of the test's own, to stop, kill and restart.

    Without ``append_only_dir`` (or ``persistent``) it keeps nothing (a restart starts empty);
    with it, it runs as the README asks of a broker (``appendonly yes``, ``appendfsync
    everysec``) and a restart (:meth:`start` after :meth:`kill` or :meth:`shutdown`) loads its
    append-only file from that directory; ``persistent=True`` puts it in a temporary folder of
    its own.
    """

    def __init__(self, port: int, *, append_only_dir: Path | None = None, persistent: bool = False) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._folder = tempfile.TemporaryDirectory(prefix="sf-redis-") if persistent and not append_only_dir else None
        self.append_only_dir = Path(self._folder.name) if self._folder else append_only_dir
        self.process = self._start()

    def _start(self) -> ManagedProcess:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.append_only_dir is None:
            args += ["--appendonly", "no"]
        else:
            args += ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.append_only_dir)]
        process = ManagedProcess([*args, "--maxmemory-policy", "noeviction"], env=dict(os.environ), name="redis")
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:  # includes "LOADING": still reading its append-only file
                return False

        wait_until(answers, timeout=10, message=f"redis-server on {self.port} did not start")
        return process

    def kill(self) -> None:
        """``kill -9``: the server is gone; without an append-only file, so is everything it held."""
        self.process.kill(signal.SIGKILL)
        self.process.wait(timeout=10)

    def shutdown(self) -> None:
        """A clean stop (``SIGTERM``: a persistent server writes its file first)."""
        self.process.stop(graceful=True)

    def start(self) -> None:
        """Start again on the same port, with what its file holds (nothing without persistence)."""
        self.process = self._start()

    def restart(self) -> None:
        """Start again on the same port: empty, or from its append-only file."""
        self.process.stop(graceful=False)
        self.process = self._start()

    def stop(self) -> None:
        self.process.stop(graceful=False)
        if self._folder is not None:
            self._folder.cleanup()


@contextmanager
def private_redis_server(*, append_only_dir: Path | None = None, persistent: bool = False) -> Iterator[PrivateRedis]:
    """A private ``redis-server`` on a free port in 6391-6399, always stopped afterwards."""
    server = PrivateRedis(_free_port(PRIVATE_REDIS_PORTS), append_only_dir=append_only_dir, persistent=persistent)
    try:
        yield server
    finally:
        server.stop()


# Below the kernel's ephemeral range (32768-60999 on Linux): a client connection of the busy
# suite may hold a port of that range just as a stopped private server binds it again.
PRIVATE_POSTGRES_PORTS = range(5491, 5500)


def _postgres_binary(name: str) -> str:
    """``name`` from the newest PostgreSQL under /usr/lib/postgresql/*/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda path: int(path.parts[-3]))
    if not found:
        raise RuntimeError(f"no {name} under /usr/lib/postgresql/*/bin")
    return str(found[-1])


def _as_postgres(args: Sequence[str]) -> list[str]:
    """Run as the ``postgres`` user (PostgreSQL refuses to run as root)."""
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *args]


class PrivatePostgres:
    """A PostgreSQL server of the test's own (``initdb`` into a temporary folder), to stop,
    restart and freeze; the machine's shared server is never touched."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="sf-postgres-"))
        os.chown(self.folder, *_postgres_ids())
        self.data = self.folder / "data"
        initdb = [_postgres_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
        subprocess.run(_as_postgres([*initdb, "--no-sync"]), check=True, capture_output=True)  # noqa: S603
        self.process = self._start()

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _start(self) -> ManagedProcess:
        server = [_postgres_binary("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.folder)]
        server += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=50"]
        process = ManagedProcess(_as_postgres(server), env=dict(os.environ), name="postgres")
        wait_until(
            lambda: self.answers() or not process.is_running(),
            timeout=30,
            message=f"postgres on {self.port} did not start",
        )
        if not process.is_running():
            raise ProcessTimeoutError(f"postgres on {self.port} exited: {process.output()[-2000:]}")
        return process

    def answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (``SIGINT``: sessions are ended, as ``pg_ctl stop -m fast`` does)."""
        if self.process.is_running():
            os.kill(self.process.pid, signal.SIGINT)
            self.process.wait(timeout=30)

    def start(self) -> None:
        self.process.stop(graceful=False)
        self.process = self._start()

    def freeze(self, sig: int = signal.SIGSTOP) -> None:
        """``SIGSTOP`` (or ``SIGCONT``) the postmaster and every backend: a hung server that
        still holds its sockets open, as a frozen VM or a stuck disk does."""
        for pid in [*self.process.child_pids(), self.process.pid]:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)

    def close(self) -> None:
        self.freeze(signal.SIGCONT)
        self.process.stop(timeout=10)
        subprocess.run(["rm", "-rf", str(self.folder)], check=False)  # noqa: S603,S607


def _postgres_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


@contextmanager
def private_postgres_server() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL on a free port in 5491-5499, always removed afterwards."""
    server = PrivatePostgres(_free_port(PRIVATE_POSTGRES_PORTS))
    try:
        yield server
    finally:
        server.close()


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
