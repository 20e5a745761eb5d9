"""Storefabric load: shoppers (page-view fan-out), one retailer server, and one shape.

Run it through ``python -m loadtests.run`` (which adds the SLO verdict and end
checks), or directly: ``LOADTEST_SCENARIO=step locust -f loadtests/locustfile.py
--headless --host http://127.0.0.1:8000``. Options are ``LOADTEST_*`` variables
(see ``loadtests/options.py``); the keys file comes from ``manage.py seed_demo``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# locust imports this file by path; make ``loadtests`` importable however it was started.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locust import LoadTestShape, between, constant_throughput, events

from loadtests import samplers, shapes
from loadtests.catalog import retailers_load
from loadtests.options import LoadOptions
from loadtests.recorder import RunRecorder
from loadtests.retailer_server import RetailerServerUser
from loadtests.scenario import Scenario
from loadtests.shoppers import ShopperUser

OPTIONS = LoadOptions.from_env()
SCENARIO = Scenario(
    options=OPTIONS,
    retailers=retailers_load(OPTIONS.keys_file),
    plan=shapes.PLANS[OPTIONS.scenario](OPTIONS),
    recorder=RunRecorder(),
)
if OPTIONS.max_retailers > len(SCENARIO.retailers):
    raise SystemExit(
        f"{OPTIONS.keys_file} holds {len(SCENARIO.retailers)} retailers; the scenario needs {OPTIONS.max_retailers}"
    )


class Shopper(ShopperUser):
    scenario = SCENARIO
    weight = 1
    concurrency = OPTIONS.parallel_calls
    network_timeout = OPTIONS.request_timeout_s
    connection_timeout = OPTIONS.request_timeout_s
    wait_time = (
        constant_throughput(shapes.fixed_rate_pace(OPTIONS))
        if OPTIONS.scenario == "fixed"
        else between(OPTIONS.think_min_s, OPTIONS.think_max_s)
    )


class RetailerServer(RetailerServerUser):
    scenario = SCENARIO
    network_timeout = OPTIONS.request_timeout_s
    connection_timeout = OPTIONS.request_timeout_s
    wait_time = constant_throughput(OPTIONS.retailer_ops_per_s)


class ScenarioShape(LoadTestShape):
    """Runs the scenario's plan; the one retailer-server user rides on top of the shoppers."""

    def tick(self) -> tuple[int, float] | None:
        stage = SCENARIO.plan.stage_at(self.get_run_time())
        SCENARIO.recorder.stage_enter(stage)
        if stage is None:
            return None
        return stage.shoppers + RetailerServer.fixed_count, stage.spawn_rate


samplers.install(events, SCENARIO)
