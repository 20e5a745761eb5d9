"""When to try a delivery again, and what an answer means.

Svix's schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — 8
attempts over about 27.6 h — each delay with ±20 % jitter so endpoints that failed
together do not come back together.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

RETRY_DELAYS_SECONDS: tuple[int, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS_SECONDS) + 1
JITTER = 0.2
RETRY_AFTER_CAP_SECONDS = 10 * 3600


@dataclass(frozen=True)
class Verdict:
    outcome: str  # succeeded | retry | permanent | gone
    retry_after: float | None = None  # seconds the endpoint asked for (429 / 503 Retry-After)


def retry_delay(attempts_made: int, jitter: Callable[[], float] = random.random) -> timedelta | None:
    """The delay before the next attempt after ``attempts_made`` attempts; ``None`` after the last."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS_SECONDS[attempts_made - 1]
    return timedelta(seconds=base * (1 - JITTER + 2 * JITTER * jitter()))


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date, capped at 10 h; ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), RETRY_AFTER_CAP_SECONDS))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return float(min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS))


def answer_verdict(status: int, retry_after: str | None = None) -> Verdict:
    """2xx succeeded; 410 gone (disables the endpoint); 429 / 503 retry, honouring
    Retry-After; other 4xx but 408 are permanent (the same request would get the same
    answer); 408, other 5xx and a 3xx (a redirect is not followed) retry."""
    if 200 <= status < 300:
        return Verdict("succeeded")
    if status == 410:
        return Verdict("gone")
    if status in (429, 503):
        return Verdict("retry", retry_after_seconds(retry_after))
    if 400 <= status < 500 and status != 408:
        return Verdict("permanent")
    return Verdict("retry")  # 408, 5xx, and a 3xx we do not follow (the URL may be fixed)
