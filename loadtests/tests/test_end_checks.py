"""The end checks fail by name when the queue does not drain, /metrics cannot be read, or events are lost or doubled.

Against a fake service and a fake clock: a 60 s wait takes no time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from loadtests.checks import POLL_SECONDS, drain_check, events_check
from loadtests.tests.conftest import METRICS_TOKEN, FakeClock, FakeService

HOST = "http://storefabric.test"
SINCE = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def drain(service: FakeService, clock: FakeClock, token: str = METRICS_TOKEN, queue: str = "ingest"):
    return drain_check(HOST, token, queue, 60.0, get=service.get, clock=clock.clock, sleep=clock.sleep)


def events(service: FakeService, clock: FakeClock, retailers, sent: dict[str, int], baseline=None):
    baseline = baseline or {retailer.name: 100 for retailer in retailers}
    return events_check(
        HOST, retailers, SINCE, baseline, sent, 60.0, get=service.get, clock=clock.clock, sleep=clock.sleep
    )


def test_a_queue_that_drains_within_the_time_passes(fake_service, fake_clock):
    fake_service.depths = [30, 12, 0]

    check = drain(fake_service, fake_clock)

    assert (check.name, check.passed, check.note) == ("drain.timeout_s", True, "queue empty")
    assert check.measured == 2 * POLL_SECONDS


def test_a_queue_that_never_drains_fails_on_the_timeout_with_its_depth(fake_service, fake_clock):
    fake_service.depths = [40, 7]

    check = drain(fake_service, fake_clock)

    assert (check.name, check.subject, check.passed) == ("drain.timeout_s", "ingest", False)
    assert check.note == "7 messages still in the queue after 60 s"
    assert fake_clock.slept == 60.0


def test_no_metrics_token_fails_at_once_and_says_how_to_pass_one(fake_service, fake_clock):
    check = drain(fake_service, fake_clock, token="")

    assert (check.name, check.passed) == ("drain.metrics_token", False)
    assert "--metrics-token or METRICS_TOKEN" in check.note
    assert fake_service.paths == []


def test_a_refused_metrics_token_fails_at_once_instead_of_waiting_out_the_timeout(fake_service, fake_clock):
    check = drain(fake_service, fake_clock, token="stale-token")

    assert (check.name, check.passed) == ("drain.metrics_token", False)
    assert "refused the metrics token (401)" in check.note
    assert fake_clock.slept == 0
    assert fake_service.paths == ["/metrics"]


def test_metrics_unreadable_for_a_while_is_waited_for(fake_service, fake_clock):
    fake_service.metrics_unavailable = 3

    check = drain(fake_service, fake_clock)

    assert (check.name, check.passed) == ("drain.timeout_s", True)
    assert fake_clock.slept == 3 * POLL_SECONDS


def test_metrics_unreadable_until_the_timeout_fails_with_the_last_error(fake_service, fake_clock):
    fake_service.depths = [9]
    fake_service.metrics_unavailable = 10_000

    check = drain(fake_service, fake_clock)

    assert (check.name, check.passed) == ("drain.timeout_s", False)
    assert check.note.startswith("/metrics unreadable after 60 s: GET /metrics answered 503")


def test_metrics_without_the_queue_fails_naming_the_missing_sample(fake_service, fake_clock):
    check = drain(fake_service, fake_clock, queue="ingset")

    assert (check.name, check.passed) == ("drain.timeout_s", False)
    assert 'no sample storefabric_queue_depth{queue="ingset"}' in check.note


def test_events_counted_late_but_all_pass(fake_service, fake_clock, retailers):
    fake_service.events = {"sk_a": [100, 120, 140], "sk_b": [100, 105]}

    checks = events(fake_service, fake_clock, retailers, {"Alice": 40, "Bob": 5})

    assert [(c.name, c.subject, c.measured, c.limit, c.passed) for c in checks] == [
        ("events.counted_equals_sent", "Bob", 5, 5, True),
        ("events.counted_equals_sent", "Alice", 40, 40, True),
    ]


def test_lost_events_fail_on_the_timeout_naming_the_retailer_and_how_many(fake_service, fake_clock, retailers):
    fake_service.events = {"sk_a": [100, 137], "sk_b": [105]}

    checks = {c.subject: c for c in events(fake_service, fake_clock, retailers, {"Alice": 40, "Bob": 5})}

    assert checks["Bob"].passed
    assert (checks["Alice"].passed, checks["Alice"].measured, checks["Alice"].limit) == (False, 37, 40)
    assert checks["Alice"].note.startswith("3 of 40 events not counted after 60 s: lost")
    assert fake_clock.slept >= 60


def test_duplicated_events_fail_at_once_as_more_counted_than_sent(fake_service, fake_clock, retailers):
    fake_service.events = {"sk_a": [142], "sk_b": [105]}

    checks = {c.subject: c for c in events(fake_service, fake_clock, retailers, {"Alice": 40, "Bob": 5})}

    assert (checks["Alice"].passed, checks["Alice"].measured, checks["Alice"].limit) == (False, 42, 40)
    assert checks["Alice"].note.startswith("2 more counted than sent: duplicated events")
    assert fake_clock.slept == 0


def test_an_unreadable_summary_fails_on_the_timeout_with_its_error(fake_service, fake_clock, retailers):
    fake_service.events = {"sk_b": [105]}  # Alice's secret key is refused

    checks = {c.subject: c for c in events(fake_service, fake_clock, retailers, {"Alice": 40, "Bob": 5})}

    assert checks["Alice"].passed is False
    assert checks["Alice"].note.startswith("analytics summary unreadable after 60 s: analytics summary of Alice")
    assert "answered 401" in checks["Alice"].note
