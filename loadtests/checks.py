"""End-of-run checks that the background work kept up: the ingest queue drains, no event is lost.

Both poll until they hold or their time runs out, so a slow but healthy
pipeline passes and a stuck or lossy one fails with the figures that show it.
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
from loadtests.service_http import ServiceHttpError, service_get
from loadtests.slo import Check

POLL_SECONDS = 0.5


class SummaryError(Exception):
    """The analytics summary could not be read."""


def drain_check(host: str, token: str, queue: str, timeout_s: float, metric: str = QUEUE_DEPTH_METRIC) -> Check:
    """The queue's depth reaches 0 within ``timeout_s`` seconds of the load stopping."""
    name = "drain.timeout_s"
    if not token:
        return Check(name, queue, None, timeout_s, False, "no metrics token: pass --metrics-token or METRICS_TOKEN")
    started = time.monotonic()
    depth: int | None = None
    error = ""
    while True:
        try:
            depth = queue_depth(host, token, queue, metric)
            error = ""
        except MetricsError as failure:
            error = str(failure)
        waited = time.monotonic() - started
        if depth == 0 and not error:
            return Check(name, queue, round(waited, 1), timeout_s, True, "queue empty")
        if waited >= timeout_s:
            note = error or f"{depth} messages still waiting"
            return Check(name, queue, round(waited, 1), timeout_s, False, note)
        time.sleep(POLL_SECONDS)


def summary_get(host: str, retailer: Retailer, since: datetime) -> dict[str, Any]:
    query = urllib.parse.urlencode({"since": since.isoformat()})
    headers = {"Authorization": f"Bearer {retailer.secret_key}", "Accept": "application/json"}
    try:
        return dict(json.loads(service_get(host, f"/v1/analytics/summary?{query}", headers)))
    except (ServiceHttpError, ValueError) as error:
        raise SummaryError(f"analytics summary of {retailer.name}: {error}") from error


def events_counted(summary: dict[str, Any]) -> int:
    """All events the summary counted: page views, product views, carts and purchases."""
    totals = summary["totals"]
    return sum(int(totals[kind]) for kind in ("page_view", "product_view", "add_to_cart", "purchase"))


def events_baseline(host: str, retailers: list[Retailer], since: datetime) -> dict[str, int]:
    """What the summary already counts for the window before the run adds anything.

    The summary counts whole minutes, so the window starts at the minute the
    run began and may hold an earlier run's events; the check compares growth.
    """
    return {retailer.name: events_counted(summary_get(host, retailer, since)) for retailer in retailers}


def events_check(
    host: str,
    retailers: list[Retailer],
    since: datetime,
    baseline: dict[str, int],
    sent: dict[str, int],
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> list[Check]:
    """Per retailer: events counted since the run began == events sent in batches answered 202."""
    name = "events.counted_equals_sent"
    started = clock()
    pending = {retailer.name: retailer for retailer in retailers}
    checks: list[Check] = []
    counted: dict[str, int] = {}
    errors: dict[str, str] = {}
    while pending:
        for retailer_name, retailer in list(pending.items()):
            try:
                counted[retailer_name] = events_counted(summary_get(host, retailer, since)) - baseline[retailer_name]
                errors.pop(retailer_name, None)
            except (SummaryError, KeyError, TypeError, ValueError) as error:
                errors[retailer_name] = str(error)
                continue
            expected = sent.get(retailer_name, 0)
            if counted[retailer_name] == expected:
                checks.append(Check(name, retailer_name, counted[retailer_name], expected, True))
                del pending[retailer_name]
            elif counted[retailer_name] > expected:
                checks.append(
                    Check(
                        name,
                        retailer_name,
                        counted[retailer_name],
                        expected,
                        False,
                        "more counted than sent: duplicates, or beacons given up on",
                    )
                )
                del pending[retailer_name]
        if not pending or clock() - started >= timeout_s:
            break
        time.sleep(POLL_SECONDS)
    for retailer_name in pending:
        note = errors.get(retailer_name) or "events lost or still not counted"
        checks.append(Check(name, retailer_name, counted.get(retailer_name), sent.get(retailer_name, 0), False, note))
    return checks
