"""The API docs page (/v1/docs) renders every operation from our own static files with every
request to another host blocked in Chromium, and sends none to the network.

Redoc 2 always renders its logo from cdn.redoc.ly (no option turns it off); the page's
Content-Security-Policy (``app/api_docs.py``) makes the browser refuse it before any DNS look-up
or connection, which Playwright reports as a request that failed with ``csp``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
from django.test import Client
from playwright.sync_api import Page, Request, Route, sync_playwright

from app.tests.browser import CHROMIUM, CHROMIUM_ARGS

NETWORK_SCHEMES = ("http", "https", "ws", "wss")
# Where to keep the screenshot for a look (default: the test's tmp_path).
SCREENSHOT = os.environ.get("SF_DOCS_SCREENSHOT", "")


@dataclass
class OfflinePage:
    """A page on the live server; every request to another host is aborted, and recorded."""

    page: Page
    own_host: str
    reached_network: list[str] = field(default_factory=list)  # seen by the route: would have left the browser
    attempted: list[str] = field(default_factory=list)  # every request the page made to another host
    refused_by_policy: list[str] = field(default_factory=list)  # refused by the page's CSP, inside the browser
    console_errors: list[str] = field(default_factory=list)

    def elsewhere(self, url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in NETWORK_SCHEMES and parts.netloc != self.own_host

    def route(self, route: Route) -> None:
        if self.elsewhere(route.request.url):
            self.reached_network.append(route.request.url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    def requested(self, request: Request) -> None:
        if self.elsewhere(request.url):
            self.attempted.append(request.url)

    def failed(self, request: Request) -> None:
        if self.elsewhere(request.url) and request.failure == "csp":
            self.refused_by_policy.append(request.url)


def operation_ids() -> list[str]:
    schema = orjson.loads(Client().get("/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    return [operation["operationId"] for item in schema["paths"].values() for operation in item.values()]


@pytest.fixture
def offline_page(live_server) -> Iterator[OfflinePage]:
    # Playwright's sync API keeps an event loop in this thread; the live server's ORM calls are synchronous.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        watched = OfflinePage(page=context.new_page(), own_host=urlsplit(live_server.url).netloc)
        context.route("**/*", watched.route)
        watched.page.on("request", watched.requested)
        watched.page.on("requestfailed", watched.failed)
        watched.page.on(
            "console", lambda message: message.type == "error" and watched.console_errors.append(message.text)
        )
        yield watched
        browser.close()


@pytest.mark.browser
def test_the_docs_render_every_operation_with_other_hosts_blocked(
    live_server, offline_page: OfflinePage, tmp_path: Path
) -> None:
    page = offline_page.page
    expected = operation_ids()

    response = page.goto(f"{live_server.url}/v1/docs")
    assert response is not None
    assert response.status == 200
    page.wait_for_selector(f'[data-section-id$="operation/{expected[-1]}"]', state="attached", timeout=30_000)
    page.wait_for_load_state("networkidle")
    rendered = page.eval_on_selector_all(
        "[data-section-id*='operation/']", "sections => sections.map(s => s.dataset.sectionId.split('/').pop())"
    )
    page.screenshot(path=SCREENSHOT or str(tmp_path / "docs.png"))

    assert sorted(set(rendered)) == sorted(expected)
    assert page.locator("h1").first.inner_text() == "Storefabric API (1.0.0)"
    assert offline_page.reached_network == []
    assert offline_page.attempted == offline_page.refused_by_policy
    # The console says why each refused request was refused; nothing else may go wrong (a policy that
    # refused one of our own scripts or Redoc's search worker would show here).
    unexplained = [
        text for text in offline_page.console_errors if not any(url in text for url in offline_page.refused_by_policy)
    ]
    assert unexplained == []


def test_the_docs_page_links_nothing_on_another_host() -> None:
    """No font, preconnect or script link in the page itself: every asset is under /static/."""
    response = Client().get("/v1/docs")
    html = response.content.decode()
    assert response.status_code == 200
    assert "//" not in html.replace("<!DOCTYPE html>", "")
    assert '<script src="/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js">' in html
    assert "default-src 'self'" in response["Content-Security-Policy"]
