"""What an endpoint URL must be: absolute http(s), no user info, at most 2,048 characters,
https only where ``WEBHOOK_HTTPS_ONLY``, an IDN host stored as punycode, and a host whose
every address the outbound client may reach."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from app import outbound_http
from app.errors import ApiError

URL_MAX_LENGTH = 2048


def endpoint_url_normalize(url: str) -> str:
    """The URL as stored (host in punycode, lower case), or ``ApiError('invalid_url')``."""
    if len(url) > URL_MAX_LENGTH:
        raise ApiError("invalid_url", f"The URL is longer than {URL_MAX_LENGTH} characters.")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise ApiError("invalid_url", f"The URL cannot be parsed: {error}.") from error
    allowed = ("https",) if settings.WEBHOOK_HTTPS_ONLY else ("https", "http")
    if parts.scheme not in allowed:
        raise ApiError("invalid_url", f"The URL must start with {' or '.join(s + '://' for s in allowed)}.")
    if parts.username is not None or parts.password is not None:
        raise ApiError("invalid_url", "The URL must not hold a user name or password.")
    if not parts.hostname or parts.fragment:
        raise ApiError("invalid_url", "The URL needs a host and no #fragment.")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise ApiError("invalid_url", "The host is not a valid domain name.") from error
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port else ""
    normalized = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    if len(normalized) > URL_MAX_LENGTH:
        raise ApiError("invalid_url", f"The URL is longer than {URL_MAX_LENGTH} characters.")
    return normalized


def endpoint_url_reachable_check(url: str) -> None:
    """``ApiError('private_address')`` when the host resolves to an address we never connect to."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        outbound_http.host_check(host, port)
    except outbound_http.PrivateAddressError as error:
        raise ApiError("private_address", f"{error}; webhooks go to public addresses only.") from error
    except outbound_http.OutboundError as error:
        raise ApiError("invalid_url", f"{error}.") from error
