"""How every browser test launches Chromium: Debian's build, headless, and quiet (no background
networking, component updates or sync), so the only requests are the ones a page makes."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
