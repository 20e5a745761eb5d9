"""Schedule: adjust the price inside day-of-week / hour windows, in the retailer's time zone.

A window is ``{"days": ["mon", ...], "start": "18:00", "end": "22:00", "adjust_percent": "-10"}``
(``end`` may be ``"24:00"``); the first window containing the moment applies. The
snapshot expires at the next window boundary, where beat recomputes it.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from pricing.rules.base import (
    Adjustment,
    ParamsError,
    PricingInputs,
    RuleKind,
    RuleSpec,
    param_error,
    params_only,
    percent_factor,
    percent_param,
    rule_kind,
)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_WINDOWS = 28
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _window(position: int, window: Any) -> dict[str, Any]:
    field = f"windows[{position}]"
    if not isinstance(window, dict):
        raise param_error(field, "must be an object with days, start, end and adjust_percent")
    days = window.get("days")
    if not isinstance(days, list) or not days or any(day not in DAYS for day in days):
        raise param_error(f"{field}.days", f"must be a non-empty list of {', '.join(DAYS)}")
    start, end = (str(window.get(name, "")) for name in ("start", "end"))
    for name, value in (("start", start), ("end", end)):
        if not _CLOCK.match(value):
            raise param_error(f"{field}.{name}", "must be HH:MM (24-hour clock; end may be 24:00)")
    if _minutes(start) >= _minutes(end):
        raise param_error(f"{field}.end", "must be after start (split a window that spans midnight in two)")
    try:
        percent = percent_param(window, "adjust_percent", low="-90", high="100")
    except ParamsError as error:
        raise param_error(f"{field}.adjust_percent", error.details[0]["message"]) from error
    return {"days": [day for day in DAYS if day in days], "start": start, "end": end, "adjust_percent": percent}


def _at(day: datetime, clock: str) -> datetime:
    minutes = _minutes(clock)
    midnight = datetime.combine(day.date(), time(0), tzinfo=day.tzinfo)
    return midnight + timedelta(minutes=minutes)


@rule_kind
class ScheduleRule(RuleKind):
    name = "schedule"

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        params_only(params, {"windows"})
        windows = params.get("windows")
        if not isinstance(windows, list) or not 1 <= len(windows) <= MAX_WINDOWS:
            raise param_error("windows", f"must be a list of 1 to {MAX_WINDOWS} windows")
        return {"windows": [_window(position, window) for position, window in enumerate(windows)]}

    def adjust(self, price: Decimal, rule: RuleSpec, inputs: PricingInputs) -> Adjustment | None:
        now = inputs.now_local
        day = DAYS[now.weekday()]
        for window in rule.params["windows"]:
            if day in window["days"] and _at(now, window["start"]) <= now < _at(now, window["end"]):
                percent = window["adjust_percent"]
                detail = {"window": f"{day} {window['start']}-{window['end']}", "percent": percent}
                return Adjustment(price * percent_factor(percent), detail)
        return None

    def next_change(self, rule: RuleSpec, inputs: PricingInputs) -> datetime | None:
        now = inputs.now_local
        upcoming: list[datetime] = []
        for offset in range(8):
            day = now + timedelta(days=offset)
            for window in rule.params["windows"]:
                if DAYS[day.weekday()] in window["days"]:
                    upcoming.extend(_at(day, window[edge]) for edge in ("start", "end"))
        later = [moment for moment in upcoming if moment > now]
        return min(later) if later else None
