"""Retry delays: full jitter under a ceiling that doubles, capped, never past half the visibility timeout."""

from __future__ import annotations

import itertools

from workers.backoff import backoff_for
from workers.errors import PermanentError, TransientError, is_transient


def test_ceilings_double_until_the_cap():
    ceilings = [backoff_for(attempt, base=2, cap=60).ceiling for attempt in range(7)]

    assert ceilings == [2, 4, 8, 16, 32, 60, 60]


def test_full_jitter_spreads_each_delay_over_zero_to_its_ceiling():
    draws = itertools.cycle([0.0, 0.5, 1.0])

    delays = [backoff_for(3, base=2, cap=60, jitter=lambda: next(draws)).delay for _ in range(3)]

    assert delays == [0.0, 8.0, 16.0]


def test_a_jittered_delay_may_shrink_while_its_ceiling_grows():
    draws = iter([0.9, 0.1])

    first = backoff_for(1, base=2, cap=60, jitter=lambda: next(draws))
    second = backoff_for(2, base=2, cap=60, jitter=lambda: next(draws))

    assert second.ceiling > first.ceiling
    assert second.delay < first.delay


def test_no_delay_exceeds_half_the_visibility_timeout(settings):
    settings.CELERY_VISIBILITY_TIMEOUT = 100

    assert backoff_for(20, base=2, cap=600, jitter=lambda: 1.0).delay == 50


def test_only_transient_errors_are_retried():
    assert is_transient(TransientError("503"))
    assert is_transient(TimeoutError())
    assert is_transient(ConnectionResetError())
    assert not is_transient(PermanentError("400"))
    assert not is_transient(ValueError("bad input"))
    assert not is_transient(KeyError("bug"))
    assert is_transient(KeyError("flaky lookup"), extra=(KeyError,))
