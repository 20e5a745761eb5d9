"""Answering the insert's API calls inside the browser, and reading what the insert stored.

For what a live server does not produce on cue (a 503 with a chosen
``Retry-After``, a 400, a request held open while another tab runs), the tests
answer ``POST /v1/events`` with ``BrowserContext.route``; the request never
leaves Chromium unless the answer passes it on to the live API. Waits are
measured on Playwright's fake page clock, paused, so a slow CI box changes
nothing.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from playwright.sync_api import Page, Route

EVENTS = re.compile(r"/v1/events\?")
PRICES = re.compile(r"/v1/prices\?")
# What the live API sends with its answers to an allowed origin: without these the page cannot read them.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Retry-After",
    "Content-Type": "application/json",
}
BLANK_PAGE = b"<!doctype html><title>blank</title>"
STORED_RECORDS = """Object.keys(localStorage).filter(k => k.startsWith('sf1:b:')).map(k => {
  const r = JSON.parse(localStorage.getItem(k));
  return {key: k, t: r.t, n: r.n, due: r.at - Date.now(), ids: r.e.map(e => e.id)};
})"""
# document.prerendering as Chromium reports it for a speculation-rules prerender, until the page is shown.
FAKE_PRERENDER = """(() => {
  let prerendering = true;
  Object.defineProperty(document, 'prerendering', {configurable: true, get: () => prerendering});
  window.__sfShow = () => {
    prerendering = false;
    document.dispatchEvent(new Event('prerenderingchange'));
  };
})();"""
NO_WEB_LOCKS = "Object.defineProperty(Navigator.prototype, 'locks', {configurable: true, get: () => undefined});"

Answer = Callable[[Route, int], None]


@dataclass
class EventPosts:
    """Route handler for ``POST /v1/events``: records the event ids of each request, then ``answer(route, nth)``."""

    answer: Answer
    sent: list[list[str]] = field(default_factory=list)

    def __call__(self, route: Route) -> None:
        body = orjson.loads(route.request.post_data or "{}")
        self.sent.append([event["id"] for event in body.get("events", [])])
        self.answer(route, len(self.sent))

    def times(self, ids: list[str]) -> int:
        """How many requests carried all of ``ids`` (one stored batch)."""
        return sum(1 for sent in self.sent if set(ids) <= set(sent))


def passed_on(route: Route, nth: int) -> None:
    """Send the request on to the live API."""
    route.continue_()


def fulfilled(status: int, headers: dict[str, str] | None = None) -> Answer:
    """Answer every request with ``status`` (202 reports the batch accepted), CORS-readable."""

    def answer(route: Route, nth: int) -> None:
        accepted = len(orjson.loads(route.request.post_data or "{}").get("events", []))
        body = {"accepted": accepted} if status == 202 else {"error": {"code": f"status_{status}"}}
        route.fulfill(status=status, headers={**CORS, **(headers or {})}, body=orjson.dumps(body))

    return answer


def first_then(first: Answer, rest: Answer) -> Answer:
    return lambda route, nth: (first if nth == 1 else rest)(route, nth)


def stored_records(page: Page) -> list[dict[str, Any]]:
    """The insert's stored batches on the page's origin: ``n`` failures so far, ``due`` in ms, event ``ids``."""
    return list(page.evaluate(STORED_RECORDS))


def pump_until(page: Page, predicate: Callable[[], Any], timeout: float = 15.0, message: str = "") -> Any:
    """Poll ``predicate`` while letting Playwright run route handlers (a plain sleep would block them)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout}s")
        page.wait_for_timeout(25)
    return value


def clock_paused(page: Page) -> None:
    """Fake time for the page's context, paused at now: timers fire only on ``page.clock.run_for``."""
    now = datetime.now(UTC)
    page.clock.install(time=now)
    page.clock.pause_at(now + timedelta(seconds=1))  # fake time flows from install on: pause a little ahead


def batch_seed(page: Page, *, age_ms: int, due_in_ms: int, events: int = 3) -> list[str]:
    """Store a batch of ``page_view`` events as the insert would have left it on the page's origin; its ids."""
    ids = [str(uuid.uuid4()) for _ in range(events)]
    page.evaluate(
        """([ids, age, dueIn]) => {
          const now = Date.now();
          const ts = new Date(now - age).toISOString();
          const e = ids.map(id => ({id, type: 'page_view', ts, session: 'seeded'}));
          const record = {t: now - age, n: 0, at: now + dueIn, e};
          localStorage.setItem('sf1:b:' + crypto.randomUUID(), JSON.stringify(record));
        }""",
        [ids, age_ms, due_in_ms],
    )
    return ids
