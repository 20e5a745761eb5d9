"""Key → retailer, answered from an in-process cache on the hot path.

The cache holds each key's context for ``API_KEY_CACHE_TTL`` seconds (2 s by
default), so steady-state requests touch no SQL and a revocation is honoured by
every process within that time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication

from app.errors import ApiError
from app.tenancy.keys import key_hash, key_kind
from app.tenancy.models import ApiKey


@dataclass(frozen=True)
class AuthContext:
    """What a request may do, and for whom; hashable and immutable."""

    retailer_id: int
    key_kind: str
    key_prefix: str
    allowed_origins: frozenset[str]
    rate_limit_per_minute: int
    pricing_paused: bool
    timezone: str
    currency: str

    @property
    def is_secret(self) -> bool:
        return self.key_kind == ApiKey.Kind.SECRET


@dataclass(frozen=True)
class _Rejected:
    code: str


_cache: dict[str, tuple[float, AuthContext | _Rejected]] = {}
_cache_lock = threading.Lock()


def key_cache_clear() -> None:
    with _cache_lock:
        _cache.clear()


def _load(hashed: str) -> AuthContext | _Rejected:
    key = ApiKey.objects.select_related("retailer").filter(key_hash=hashed).first()
    if key is None:
        return _Rejected("invalid_key")
    if not key.is_active(timezone.now()):
        return _Rejected("revoked_key")
    retailer = key.retailer
    return AuthContext(
        retailer_id=retailer.id,
        key_kind=key.kind,
        key_prefix=key.prefix,
        allowed_origins=frozenset(retailer.origins.values_list("origin", flat=True)),
        rate_limit_per_minute=retailer.rate_limit_per_minute or settings.RATE_LIMIT_DEFAULT_PER_MINUTE,
        pricing_paused=retailer.pricing_paused,
        timezone=retailer.time_zone,
        currency=retailer.default_currency,
    )


def key_resolve(raw_key: str) -> AuthContext:
    """The context of a raw key, or an ``ApiError`` (invalid_key / revoked_key)."""
    hashed = key_hash(raw_key)
    now = time.monotonic()
    hit = _cache.get(hashed)
    if hit is None or hit[0] <= now:
        entry = _load(hashed)
        with _cache_lock:
            _cache[hashed] = (now + settings.API_KEY_CACHE_TTL, entry)
    else:
        entry = hit[1]
    if isinstance(entry, _Rejected):
        raise ApiError(entry.code)
    return entry


def raw_key_from_request(request: HttpRequest) -> str:
    """The key of a request: ``Authorization: Bearer`` first, then ``?key=`` (pk only)."""
    query_key = request.GET.get("key", "")
    if query_key.startswith("sk_"):
        raise ApiError("secret_key_in_url")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError("not_authenticated", "Use Authorization: Bearer <key>.")
        return value.strip()
    if query_key:
        return query_key
    raise ApiError("not_authenticated")


def request_authenticate(request: HttpRequest, *, secret_required: bool) -> AuthContext:
    """Authenticate and apply the key rules (kind, origin) in the order the API documents."""
    raw = raw_key_from_request(request)
    if key_kind(raw) is None:
        raise ApiError("invalid_key")
    context = key_resolve(raw)
    if not context.is_secret:
        if secret_required:
            raise ApiError("secret_key_required")
        origin = request.META.get("HTTP_ORIGIN")
        if origin is not None and origin not in context.allowed_origins:
            raise ApiError("origin_not_allowed")
    return context


class KeyPrincipal:
    """The ``request.user`` of an API call: the retailer behind the key."""

    is_authenticated = True
    is_staff = False
    is_anonymous = False

    def __init__(self, context: AuthContext) -> None:
        self.context = context

    def __str__(self) -> str:
        return f"key:{self.context.key_prefix}"


class ApiKeyAuthentication(BaseAuthentication):
    """DRF authentication; views that accept publishable keys set ``publishable_allowed``."""

    def authenticate(self, request: Any) -> tuple[KeyPrincipal, AuthContext]:
        view = request.parser_context.get("view") if request.parser_context else None
        secret_required = not getattr(view, "publishable_allowed", False)
        context = request_authenticate(request._request, secret_required=secret_required)
        return KeyPrincipal(context), context

    def authenticate_header(self, request: Any) -> str:
        return "Bearer"


def auth_context(request: Any) -> AuthContext:
    """The typed ``request.auth`` of a DRF view that authenticated with an API key."""
    context = getattr(request, "auth", None)
    if not isinstance(context, AuthContext):
        raise ApiError("not_authenticated")
    return context
