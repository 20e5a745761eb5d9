"""End-of-run checks that the background work kept up: the ingest queue drains, no event is lost.

Both poll until they hold or their time runs out, so a slow but healthy
pipeline passes and a stuck or lossy one fails with the figures that show it.
What waiting cannot fix (no metrics token, or one the service refuses) fails at
once. Each takes the HTTP GET, the clock and the sleep it uses, so tests run
them against a fake service in no time.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from datetime import datetime
from typing import Any

from loadtests.catalog import Retailer
from loadtests.metrics import QUEUE_DEPTH_METRIC, MetricsError, queue_depth
from loadtests.service_http import HttpGet, ServiceHttpError, service_get
from loadtests.slo import Check

POLL_SECONDS = 0.5
DRAIN_CHECK = "drain.timeout_s"
AUTH_CHECK = "drain.metrics_token"
EVENTS_CHECK = "events.counted_equals_sent"
NO_AUTH_NOTE = "no metrics token: pass --metrics-token or METRICS_TOKEN (the service's METRICS_TOKEN)"

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class SummaryError(Exception):
    """The analytics summary could not be read."""


def drain_check(
    host: str,
    token: str,
    queue: str,
    timeout_s: float,
    metric: str = QUEUE_DEPTH_METRIC,
    *,
    get: HttpGet = service_get,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> Check:
    """The queue's depth reaches 0 within ``timeout_s`` seconds of the load stopping.

    Fails as ``drain.metrics_token`` when the token is missing or refused, and as
    ``drain.timeout_s`` when the queue still held messages, or ``/metrics`` was
    still unreadable, when the time ran out.
    """
    if not token:
        return Check(AUTH_CHECK, queue, None, None, False, NO_AUTH_NOTE)
    started = clock()
    depth: int | None = None
    error = ""
    while True:
        try:
            depth, error = queue_depth(host, token, queue, metric, get), ""
        except MetricsError as failure:
            if failure.permanent:
                return Check(AUTH_CHECK, queue, None, None, False, str(failure))
            error = str(failure)
        waited = clock() - started
        if depth == 0 and not error:
            return Check(DRAIN_CHECK, queue, round(waited, 1), timeout_s, True, "queue empty")
        if waited >= timeout_s:
            return Check(DRAIN_CHECK, queue, round(waited, 1), timeout_s, False, _undrained(depth, error, waited))
        sleep(POLL_SECONDS)


def _undrained(depth: int | None, error: str, waited: float) -> str:
    if error:
        last = f" (last depth read: {depth})" if depth is not None else ""
        return f"/metrics unreadable after {waited:g} s: {error}{last}"
    return f"{depth} messages still in the queue after {waited:g} s"


def summary_get(host: str, retailer: Retailer, since: datetime, get: HttpGet = service_get) -> dict[str, Any]:
    query = urllib.parse.urlencode({"since": since.isoformat()})
    headers = {"Authorization": f"Bearer {retailer.secret_key}", "Accept": "application/json"}
    try:
        return dict(json.loads(get(host, f"/v1/analytics/summary?{query}", headers, 10.0)))
    except (ServiceHttpError, ValueError) as error:
        raise SummaryError(f"analytics summary of {retailer.name}: {error}") from error


def events_counted(summary: dict[str, Any]) -> int:
    """All events the summary counted: page views, product views, carts and purchases."""
    totals = summary["totals"]
    return sum(int(totals[kind]) for kind in ("page_view", "product_view", "add_to_cart", "purchase"))


def events_baseline(
    host: str, retailers: list[Retailer], since: datetime, get: HttpGet = service_get
) -> dict[str, int]:
    """What the summary already counts for the window before the run adds anything.

    The summary counts whole minutes, so the window starts at the minute the
    run began and may hold an earlier run's events; the check compares growth.
    """
    return {retailer.name: events_counted(summary_get(host, retailer, since, get)) for retailer in retailers}


def events_check(
    host: str,
    retailers: list[Retailer],
    since: datetime,
    baseline: dict[str, int],
    sent: dict[str, int],
    timeout_s: float,
    *,
    get: HttpGet = service_get,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> list[Check]:
    """Per retailer: events counted since the run began == events sent in batches answered 202.

    More counted than sent fails at once (counts only grow); fewer fails when the
    time runs out, as lost — or still queued, which ``--recheck`` tells apart later.
    """
    started = clock()
    pending = {retailer.name: retailer for retailer in retailers}
    checks: list[Check] = []
    counted: dict[str, int] = {}
    errors: dict[str, str] = {}
    while pending:
        for name, retailer in list(pending.items()):
            try:
                counted[name] = events_counted(summary_get(host, retailer, since, get)) - baseline[name]
                errors.pop(name, None)
            except (SummaryError, KeyError, TypeError, ValueError) as error:
                errors[name] = str(error)
                continue
            expected = sent.get(name, 0)
            if counted[name] >= expected:
                checks.append(_events_verdict(name, counted[name], expected, timeout_s))
                del pending[name]
        if not pending or clock() - started >= timeout_s:
            break
        sleep(POLL_SECONDS)
    for name in pending:
        if name in errors:
            note = f"analytics summary unreadable after {timeout_s:g} s: {errors[name]}"
            checks.append(Check(EVENTS_CHECK, name, counted.get(name), sent.get(name, 0), False, note))
        else:
            checks.append(_events_verdict(name, counted[name], sent.get(name, 0), timeout_s))
    return checks


def _events_verdict(retailer: str, counted: int, expected: int, timeout_s: float) -> Check:
    if counted == expected:
        return Check(EVENTS_CHECK, retailer, counted, expected, True)
    if counted > expected:
        note = (
            f"{counted - expected} more counted than sent: duplicated events, "
            "or beacons the load gave up on that the service still accepted"
        )
    else:
        note = (
            f"{expected - counted} of {expected} events not counted after {timeout_s:g} s: "
            "lost, or still queued (run again with --recheck later to tell)"
        )
    return Check(EVENTS_CHECK, retailer, counted, expected, False, note)
