"""The one blocking HTTP GET of the end checks and samplers (stdlib only; gevent-patched under locust)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_SECONDS = 10.0


class ServiceHttpError(Exception):
    """The service could not be reached, or answered with an error status."""


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
        raise ServiceHttpError(f"GET {path} answered {error.code}: {error.read()[:300]!r}") from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise ServiceHttpError(f"GET {path} failed: {error}") from error
