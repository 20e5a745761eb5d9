"""Read one queue's depth from the service's Prometheus ``/metrics`` (Bearer token)."""

from __future__ import annotations

import re

from loadtests.service_http import HttpGet, ServiceHttpError, service_get

QUEUE_DEPTH_METRIC = "storefabric_queue_depth"
TIMEOUT_SECONDS = 5.0
# /metrics answers 401 to a missing or wrong token and 403 when the service has none set.
REFUSED_STATUSES = (401, 403)


class MetricsError(Exception):
    """``/metrics`` could not be read, or does not report the queue.

    ``permanent`` errors (the token refused) do not go away by asking again;
    the others (service busy or restarting, broker down) may.
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def metrics_text(host: str, token: str, get: HttpGet = service_get) -> str:
    try:
        return get(host, "/metrics", {"Authorization": f"Bearer {token}"}, TIMEOUT_SECONDS).decode()
    except ServiceHttpError as error:
        if error.status in REFUSED_STATUSES:
            raise MetricsError(
                f"/metrics refused the metrics token ({error.status}): pass the service's METRICS_TOKEN "
                "with --metrics-token or METRICS_TOKEN",
                permanent=True,
            ) from error
        raise MetricsError(str(error)) from error


def sample_value(text: str, metric: str, labels: dict[str, str]) -> float:
    """The value of the first sample of ``metric`` whose labels include ``labels``."""
    pattern = re.compile(rf"^{re.escape(metric)}(?:\{{(?P<labels>[^}}]*)\}})?\s+(?P<value>\S+)", re.MULTILINE)
    for match in pattern.finditer(text):
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group("labels") or ""))
        if all(found.get(name) == value for name, value in labels.items()):
            return float(match.group("value"))
    wanted = ",".join(f'{name}="{value}"' for name, value in labels.items())
    raise MetricsError(f"/metrics has no sample {metric}{{{wanted}}}")


def queue_depth(
    host: str, token: str, queue: str = "ingest", metric: str = QUEUE_DEPTH_METRIC, get: HttpGet = service_get
) -> int:
    """Messages waiting in ``queue`` now, as the service exports them."""
    return int(sample_value(metrics_text(host, token, get), metric, {"queue": queue}))
