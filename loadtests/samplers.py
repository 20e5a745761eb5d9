"""Locust event wiring: feed the recorder, sample CPU and ingest queue depth, write the run report."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import asdict
from typing import Any

import gevent
import psutil
from locust.env import Environment
from locust.event import Events

from loadtests.metrics import MetricsError, queue_depth
from loadtests.scenario import Scenario

CPU_SAMPLE_SECONDS = 1.0


def install(events: Events, scenario: Scenario) -> None:
    """Register the listeners that keep ``scenario.recorder`` up to date."""
    recorder = scenario.recorder
    options = scenario.options
    greenlets: list[gevent.Greenlet] = []
    written = False

    @events.request.add_listener
    def on_request(name: str, response_time: float, exception: BaseException | None, **_: Any) -> None:
        recorder.request(name, response_time or 0.0, exception is not None)

    def sample_cpu() -> None:
        process = psutil.Process()
        process.cpu_percent(None)
        psutil.cpu_percent(None)
        while True:
            gevent.sleep(CPU_SAMPLE_SECONDS)
            recorder.cpu_sample(process.cpu_percent(None), psutil.cpu_percent(None))

    def sample_queue(host: str) -> None:
        while True:
            # Best effort: the end-of-run drain check is the one that reports an unreadable /metrics.
            with suppress(MetricsError):
                recorder.queue_depth_sample(queue_depth(host, options.metrics_token))
            gevent.sleep(options.metrics_poll_s)

    @events.test_start.add_listener
    def on_test_start(environment: Environment, **_: Any) -> None:
        greenlets.append(gevent.spawn(sample_cpu))
        if options.metrics_token and environment.host:
            greenlets.append(gevent.spawn(sample_queue, environment.host))

    @events.test_stop.add_listener
    def on_test_stop(environment: Environment, **_: Any) -> None:
        nonlocal written
        if written:
            return
        written = True
        gevent.killall(greenlets)
        recorder.finish()
        settings = {key: str(value) for key, value in asdict(options).items() if key != "metrics_token"}
        recorder.write(
            options.report_dir,
            {
                "host": environment.host,
                "options": settings,
                "retailers": [r.name for r in scenario.retailers[: options.max_retailers]],
            },
        )
