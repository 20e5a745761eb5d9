"""Load shapes: step growth, spike, soak and fixed rate.

Each shape is a *plan* — a pure function from run time to a :class:`Stage` —
that the locustfile wraps in a ``LoadTestShape``. Locust ignores ``--run-time``
when a shape is in use, so every plan ends itself by returning ``None``. (No
locust import here: importing locust monkey-patches the process with gevent.)

A stage is *measured* once its users have settled; only measured time counts
in the per-stage figures (``steps.csv``), so ramps do not blur the rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from loadtests.options import LoadOptions
from loadtests.recorder import Stage


class StepPlan:
    """One retailer's cohort first; another cohort every ``step_seconds``, up to ``max_retailers``.

    A new retailer brings all its shoppers at once: a cohort spawns within one second.
    The last step is held for a full step too, then the run ends.
    """

    def __init__(self, options: LoadOptions) -> None:
        self.step_seconds = options.step_seconds
        self.max_retailers = options.max_retailers
        self.cohort = options.cohort
        self.settle_s = options.settle_s

    def stage_at(self, run_time: float) -> Stage | None:
        step = int(run_time // self.step_seconds)
        if step >= self.max_retailers:
            return None
        return Stage(
            label=f"step {step + 1}",
            shoppers=self.cohort * (step + 1),
            spawn_rate=float(self.cohort),
            measured=run_time - step * self.step_seconds >= self.settle_s,
            retailers=step + 1,
        )

    def retailer_for(self, shopper_number: int) -> int:
        """Shoppers are numbered in spawn order; cohort *k* belongs to retailer *k*."""
        return min(shopper_number // self.cohort, self.max_retailers - 1)

    @property
    def duration_s(self) -> float:
        return self.step_seconds * self.max_retailers


class _PhasedPlan:
    """A fixed sequence of (label, shoppers, seconds) phases over all retailers, round robin."""

    phases: list[tuple[str, int, float]]
    target_rate: float | None = None

    def __init__(self, options: LoadOptions) -> None:
        self.retailers = options.max_retailers
        self.settle_s = options.settle_s
        self.spawn_rate = 1000.0

    def stage_at(self, run_time: float) -> Stage | None:
        start = 0.0
        for label, shoppers, seconds in self.phases:
            if run_time < start + seconds:
                return Stage(
                    label=label,
                    shoppers=shoppers,
                    spawn_rate=self.spawn_rate,
                    measured=self._measured(label, run_time - start),
                    retailers=self.retailers,
                    target_rate=self.target_rate,
                )
            start += seconds
        return None

    def _measured(self, label: str, into_phase: float) -> bool:
        return into_phase >= self.settle_s

    def retailer_for(self, shopper_number: int) -> int:
        return shopper_number % self.retailers

    @property
    def duration_s(self) -> float:
        return sum(seconds for _, _, seconds in self.phases)


class SpikePlan(_PhasedPlan):
    """A steady base, a sudden burst (a flash sale) of ``spike_factor`` times the users, and back."""

    def __init__(self, options: LoadOptions) -> None:
        super().__init__(options)
        base = options.spike_base_users
        self.phases = [
            ("base", base, options.spike_base_s),
            ("spike", math.ceil(base * options.spike_factor), options.spike_s),
            ("recover", base, options.spike_recover_s),
        ]


class SoakPlan(_PhasedPlan):
    """A steady number of shoppers for ``soak_s``, reported in windows of ``soak_window_s``.

    Windows let latency, queue depth and failures be compared early against late.
    """

    def __init__(self, options: LoadOptions) -> None:
        super().__init__(options)
        self.spawn_rate = float(max(options.soak_users // 5, 1))
        windows = math.ceil(options.soak_s / options.soak_window_s)
        self.phases = []
        for window in range(windows):
            start = window * options.soak_window_s
            seconds = min(options.soak_window_s, options.soak_s - start)
            label = f"soak {_clock(start)}-{_clock(start + seconds)}"
            self.phases.append((label, options.soak_users, seconds))

    def _measured(self, label: str, into_phase: float) -> bool:
        return label != self.phases[0][0] or into_phase >= self.settle_s


def _clock(seconds: float) -> str:
    """``h:mm:ss`` of a run time, for stage labels."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class FixedRatePlan(_PhasedPlan):
    """A target page-view rate from paced shoppers, with headroom for slow pages.

    Locust's ``constant_throughput(p)`` only caps each user's pace: it waits
    ``1 / p`` minus the page's time, and a page that took longer than ``1 / p`` is
    never caught up. So the shape runs ``rate_headroom`` (10 %) more users than
    ``rate / pace_per_user`` and paces each at ``rate / users``: together they aim
    at exactly the target, and each user's period is 10 % longer than the nominal
    ``1 / pace_per_user``, so a page may take that much longer before its user
    falls behind. The verdict then checks the achieved rate.
    """

    def __init__(self, options: LoadOptions) -> None:
        super().__init__(options)
        self.target_rate = options.rate
        users = fixed_rate_users(options)
        self.spawn_rate = max(users / options.ramp_s, 1.0)
        self.phases = [("ramp", users, options.ramp_s), ("hold", users, options.hold_s)]

    def _measured(self, label: str, into_phase: float) -> bool:
        return label == "hold"


def fixed_rate_users(options: LoadOptions) -> int:
    """``rate / pace_per_user`` users and ``rate_headroom`` more (rounded so 90 * 1.1 is 99, not 100)."""
    return math.ceil(round(options.rate / options.pace_per_user * (1 + options.rate_headroom), 9))


def fixed_rate_pace(options: LoadOptions) -> float:
    """Page views/s of each fixed-rate user: at most ``pace_per_user``, and all users together make ``rate``."""
    return options.rate / fixed_rate_users(options)


Plan = StepPlan | SpikePlan | SoakPlan | FixedRatePlan
PLANS: dict[str, Callable[[LoadOptions], Plan]] = {
    "step": StepPlan,
    "spike": SpikePlan,
    "soak": SoakPlan,
    "fixed": FixedRatePlan,
}
