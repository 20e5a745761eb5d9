"""Exponential backoff with full jitter and a cap.

``delay = uniform(0, min(cap, base * 2**attempt))`` ("full jitter"): retries of
many tasks that failed together spread over the whole window instead of
returning in a synchronized storm. The ceiling grows with each attempt; one
jittered delay may not, which is why the jitter source is injectable.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

Jitter = Callable[[], float]
"""Returns a number in [0, 1]; ``random.random`` in production, a constant in tests."""


@dataclass(frozen=True)
class Backoff:
    ceiling: float
    delay: float


def max_countdown() -> float:
    """The longest countdown allowed: half the visibility timeout (a longer ETA on the
    Redis transport is handed to a second worker before it is due, and runs twice)."""
    return settings.CELERY_VISIBILITY_TIMEOUT / 2


def backoff_for(attempt: int, *, base: float, cap: float, jitter: Jitter = random.random) -> Backoff:
    """Delay before retry number ``attempt + 1`` (``attempt`` counts from 0)."""
    ceiling = min(cap, max_countdown(), base * (2 ** max(attempt, 0)))
    fraction = min(max(jitter(), 0.0), 1.0)
    return Backoff(ceiling=ceiling, delay=ceiling * fraction)
