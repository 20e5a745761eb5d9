"""Drive one shopper through a session per fan-out mode against a fake HTTP client; print its calls as JSON.

``python -m loadtests.tests.shopper_driver batched per-product``. It runs in a
process of its own because importing locust monkey-patches the process with
gevent, which pytest's must not be: ``test_shopper_pages.py`` reads its output
and never imports it.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import locust  # noqa: F401 - before loadtests (which reach ssl and sockets): it patches them for gevent
from locust.env import Environment

from loadtests.catalog import Retailer
from loadtests.options import LoadOptions
from loadtests.recorder import RunRecorder
from loadtests.scenario import Scenario
from loadtests.shapes import StepPlan
from loadtests.shoppers import JS_PATH, ShopperUser

RETAILER = Retailer(0, "Alice", "pk_alice", "sk_alice", "https://alice.example", tuple(f"A-{n}" for n in range(40)))
PAGES = 3


@dataclass
class FakeResponse:
    status_code: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    failed: str = ""

    @property
    def content(self) -> bytes:
        return self.text.encode()

    def failure(self, message: str) -> None:
        self.failed = message

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@dataclass
class FakeClient:
    """Answers as Storefabric does, and keeps every call."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def get(self, path: str, headers: dict[str, str], name: str, catch_response: bool) -> FakeResponse:
        self.calls.append({"method": "GET", "path": path, "name": name, "headers": headers})
        if path == JS_PATH:
            return FakeResponse(200, "/* insert */", {"ETag": '"v1"', "Cache-Control": "public, max-age=300"})
        url = urllib.parse.urlsplit(path)
        if url.path == "/v1/prices":
            skus = urllib.parse.parse_qs(url.query)["skus"][0].split(",")
            return FakeResponse(200, json.dumps({"prices": [price(sku) for sku in skus], "missing": []}))
        return FakeResponse(200, json.dumps(price(url.path.rsplit("/", 1)[1])))

    def post(self, path: str, data: str, headers: dict[str, str], name: str, catch_response: bool) -> FakeResponse:
        events = json.loads(data)["events"]
        self.calls.append({"method": "POST", "path": path, "name": name, "headers": headers, "events": events})
        return FakeResponse(202, json.dumps({"accepted": len(events)}))


def price(sku: str) -> dict[str, str]:
    return {"sku": sku, "price": "19.99", "currency": "EUR", "variant": "control"}


def session(mode: str) -> dict[str, Any]:
    options = LoadOptions(
        mode=mode, pages_per_session_min=PAGES, pages_per_session_max=PAGES, cart_share=1.0, purchase_share=1.0
    )
    scenario = Scenario(options=options, retailers=[RETAILER], plan=StepPlan(options), recorder=RunRecorder())

    class Shopper(ShopperUser):
        host = "http://storefabric.test"

    Shopper.scenario = scenario
    environment = Environment(user_classes=[Shopper])
    pages: list[str | None] = []
    environment.events.request.add_listener(
        lambda name, exception, **_: pages.append(str(exception) if exception else None) if name == "page" else None
    )
    shopper = Shopper(environment)
    client = FakeClient()
    shopper.client = client  # type: ignore[assignment]
    shopper.on_start()
    for _ in range(PAGES):
        shopper.page_view()
    retailer = {"name": RETAILER.name, "origin": RETAILER.origin, "publishable_key": RETAILER.publishable_key}
    events_sent = dict(scenario.recorder.events_sent)
    session_calls = list(client.calls)
    shopper.page_view()  # the first page of the next session
    next_session = client.calls[len(session_calls) :]
    return {
        "retailer": retailer,
        "calls": session_calls,
        "pages": pages[:PAGES],
        "events_sent": events_sent,
        "next_session_calls": next_session,
    }


if __name__ == "__main__":
    print(json.dumps({mode: session(mode) for mode in sys.argv[1:]}))
