"""Key → retailer, answered from in-process caches on the hot path.

A known key's context is fresh for ``API_KEY_CACHE_TTL`` seconds (2 s by default), so
steady-state requests touch no SQL and a revocation is honoured by every process within
that time. Both caches are bounded LRUs (cachetools): known keys (``API_KEY_CACHE_SIZE``)
and, apart so that a flood of unknown keys cannot evict a valid one, rejected keys
(``API_KEY_REJECTED_CACHE_SIZE``). A key in neither costs a query, so it first passes the
client's failed-authentication limit (:mod:`app.tenancy.auth_failures`).

While PostgreSQL is unreachable (or hung past ``DB_HOT_PATH_TIMEOUT``), a known key keeps
its last known context: prices and events go on being served from Redis and the broker.
The trade-off: a key revoked during the outage is honoured once the database answers
again. A key this process never saw answers 503 ``database_unavailable`` meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication

from app.client_identity import request_client_hash
from app.db_availability import hot_path_sql
from app.errors import ApiError, database_unavailable_error
from app.tenancy.auth_failures import auth_failure_record, auth_failures_check
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


class _KeyCaches:
    """The two bounded caches of one process, sized when first used after a clear."""

    def __init__(self) -> None:
        self.known: LRUCache[str, tuple[float, AuthContext]] = LRUCache(settings.API_KEY_CACHE_SIZE)
        self.rejected: LRUCache[str, tuple[float, _Rejected]] = LRUCache(settings.API_KEY_REJECTED_CACHE_SIZE)
        self.lock = threading.Lock()  # cachetools caches are not thread-safe (gthread workers)


_caches: _KeyCaches | None = None


def key_caches() -> _KeyCaches:
    global _caches
    if _caches is None:
        _caches = _KeyCaches()
    return _caches


def key_cache_clear() -> None:
    """Forget every key (tests; the sizes are read again on next use)."""
    global _caches
    _caches = None


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


def _load_guarded(hashed: str) -> AuthContext | _Rejected | None:
    """``_load`` as hot-path SQL (deadline, breaker); None while the database is away."""
    try:
        return hot_path_sql(lambda: _load(hashed))
    except ApiError:  # database_unavailable: _load raises nothing else
        return None


def _store(caches: _KeyCaches, hashed: str, entry: AuthContext | _Rejected) -> None:
    fresh_until = time.monotonic() + settings.API_KEY_CACHE_TTL
    with caches.lock:
        if isinstance(entry, _Rejected):
            caches.known.pop(hashed, None)
            caches.rejected[hashed] = (fresh_until, entry)
        else:
            caches.known[hashed] = (fresh_until, entry)


def key_resolve(raw_key: str, client: Callable[[], str] | None = None) -> AuthContext:
    """The context of a raw key, or an ``ApiError`` (invalid_key / revoked_key / 429 / 503).

    ``client`` gives the caller's client hash; it is asked only for a key this process
    knows neither as valid nor as rejected, whose lookup the failed-authentication limit
    guards.
    """
    hashed = key_hash(raw_key)
    caches = key_caches()
    now = time.monotonic()
    with caches.lock:
        known = caches.known.get(hashed)
        rejected = None if known is not None else caches.rejected.get(hashed)
    if known is not None:
        fresh_until, context = known
        if fresh_until > now:
            return context
        entry = _load_guarded(hashed)
        if entry is None:
            return context  # the database is away: the last known context (see the module's trade-off)
    elif rejected is not None and rejected[0] > now:
        raise ApiError(rejected[1].code)
    else:
        if client is not None:
            auth_failures_check(client())
        entry = _load_guarded(hashed)
        if entry is None:
            raise database_unavailable_error()
    _store(caches, hashed, entry)
    if isinstance(entry, _Rejected):
        if client is not None:
            auth_failure_record(client())
        raise ApiError(entry.code)
    return entry


def secret_key_in_url_refuse(request: HttpRequest) -> list[str]:
    """The request's ``key`` values; a secret key among them is a 400 ``secret_key_in_url``.

    Also checked by ``app.input_guard`` before ``SecurityMiddleware``, whose HTTPS redirect
    would otherwise echo the secret key back in its ``Location``.
    """
    query_keys = request.GET.getlist("key")
    if any(value.startswith("sk_") for value in query_keys):
        raise ApiError("secret_key_in_url")
    return query_keys


def raw_key_from_request(request: HttpRequest) -> str:
    """The key of a request: ``Authorization: Bearer`` first, then ``?key=`` (pk only).

    Every ``key`` value is checked, not only the last one Django's ``GET.get`` returns: a
    secret key anywhere in the URL is refused, and so is a repeated ``key`` (which one is
    meant is ambiguous).
    """
    query_keys = secret_key_in_url_refuse(request)
    if len(query_keys) > 1:
        raise ApiError("malformed_request", "Send one key parameter, not several.")
    query_key = query_keys[0] if query_keys else ""
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
    context = key_resolve(raw, client=lambda: request_client_hash(request))
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
