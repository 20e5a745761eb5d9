"""The one blocking HTTP GET of the end checks and samplers (stdlib only; gevent-patched under locust)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

TIMEOUT_SECONDS = 10.0

# ``service_get``'s signature: what the checks take in its place to run against a fake service.
HttpGet = Callable[[str, str, dict[str, str], float], bytes]


class ServiceHttpError(Exception):
    """The service could not be reached (``status`` None), or answered with an error ``status``."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def service_get(host: str, path: str, headers: dict[str, str], timeout: float = TIMEOUT_SECONDS) -> bytes:
    """``GET host + path``; only ``http``/``https`` hosts, so a typo cannot open a local file."""
    url = f"{host.rstrip('/')}{path}"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ServiceHttpError(f"{host!r} is not an http(s) URL")
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            return bytes(response.read())
    except urllib.error.HTTPError as error:
        raise ServiceHttpError(f"GET {path} answered {error.code}: {error.read()[:300]!r}", error.code) from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        raise ServiceHttpError(f"{host} did not answer GET {path} ({reason}): is the service running there?") from error
