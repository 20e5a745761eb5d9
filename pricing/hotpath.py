"""The real-time price API: plain Django views, one Redis round trip, no SQL in steady state.

A request authenticates from the in-process key cache, then sends one pipeline
to Redis holding the ``MGET`` of the snapshots and the rate-limit counters (the key's, and
the client's for a publishable key: :mod:`app.tenancy.ratelimit`), and
answers with orjson. Only a Redis miss (never seen, evicted or expired) reads
PostgreSQL, and it writes the copy back; unknown SKUs are cached as misses for a
few seconds. When Redis is unreachable or answers errors (timeouts of tens of
milliseconds or an error reply such as ``OOM`` or ``READONLY``, then the circuit
breaker answers at once), prices come from PostgreSQL marked ``"stale": true`` and
the rate limit fails open: never a 500. When PostgreSQL is away, what Redis holds is
served with the last known key context; a Redis miss then answers 503
``database_unavailable`` (``app.db_availability.hot_path_sql``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
import redis
import structlog
from django.http import HttpRequest, HttpResponse

from app.db_availability import hot_path_sql
from app.errors import ApiError, database_unavailable_error, error_response
from app.redis_client import RedisUnavailableError, cache_redis, redis_guarded
from app.tenancy.authentication import AuthContext, request_authenticate
from app.tenancy.cors import cors_apply
from app.tenancy.ratelimit import RateCounts, counted_round_trip, rate_limit_enforce, rate_window
from pricing.models import PriceSnapshot
from pricing.rules.base import DEFAULT_PATH
from pricing.rules.experiment import variant_for
from pricing.selectors import snapshots_of
from pricing.services.refresh import snapshots_refresh
from pricing.skus import invalid_sku, sku_problem, sku_valid
from pricing.snapshots import (
    UnreadableSnapshotError,
    misses_cache_write,
    snapshot_body,
    snapshot_decode,
    snapshot_key_prefix,
    snapshot_steps,
    snapshots_cache_write,
)

log = structlog.get_logger(__name__)

MAX_SKUS = 100
MAX_VISITOR_LENGTH = 128
EXPLAIN = "1"  # the one value of ?explain= (the contract's enum)
READ_METHODS = ("GET", "HEAD")

Body = dict[str, Any]


def _skus_param(raw: str) -> list[str]:
    skus = list(dict.fromkeys(raw.split(","))) if raw else []
    if not 1 <= len(skus) <= MAX_SKUS:
        raise ApiError("too_many_skus", f"Ask for 1 to {MAX_SKUS} SKUs in one call: ?skus=A,B,C")
    bad = [sku for sku in skus if not sku_valid(sku)]
    if bad:
        raise invalid_sku([sku_problem(sku, field="skus") for sku in bad[:10]])
    return skus


def _from_database(retailer_id: int, skus: list[str]) -> tuple[dict[str, Body | None], list[PriceSnapshot]]:
    """Snapshots from PostgreSQL, by SKU; a product never priced yet is priced now."""
    rows = snapshots_of(retailer_id=retailer_id, skus=skus)
    priced = {row.sku for row in rows}
    unpriced = [sku for sku in skus if sku not in priced]
    if unpriced:
        rows += snapshots_refresh(retailer_id=retailer_id, skus=unpriced, reason="first request").snapshots.values()
    bodies = {row.sku: {**snapshot_body(row), "s": row.steps} if row.active else None for row in rows}
    return {sku: bodies.get(sku) for sku in skus}, rows


def _fill(retailer_id: int, skus: list[str]) -> dict[str, Body | None]:
    """Answer Redis misses from PostgreSQL and copy what was found back to Redis."""
    found, rows = _from_database(retailer_id, skus)
    snapshots_cache_write(rows)
    misses_cache_write(retailer_id, [sku for sku in skus if sku not in {row.sku for row in rows}])
    return found


_outage_logged_at = 0.0
OUTAGE_LOG_INTERVAL_SECONDS = 10.0


def _outage_log(context: AuthContext, error: RedisUnavailableError) -> None:
    """Say that prices are stale and the rate limit is open, once per interval, not per request."""
    global _outage_logged_at
    now = time.monotonic()
    if now - _outage_logged_at >= OUTAGE_LOG_INTERVAL_SECONDS:
        _outage_logged_at = now
        log.warning("prices_stale_rate_limit_fail_open", key_prefix=context.key_prefix, error=str(error))


def _redis_last_resort(
    fetch: Callable[[redis.Redis], tuple[list[Any], RateCounts]],
) -> tuple[list[Any], RateCounts]:
    """Ask Redis once more past its open breaker: with the database away too, it is the
    only source left (a breaker opened by one slow reply must not turn prices into 503s)."""
    try:
        return fetch(cache_redis())
    except (redis.RedisError, OSError) as error:
        raise database_unavailable_error() from error


def _lookup(context: AuthContext, request: HttpRequest, skus: list[str]) -> tuple[dict[str, Body | None], bool]:
    """Bodies by SKU (None: not sold) and whether they are stale; counts the request."""
    prefix = snapshot_key_prefix(context.retailer_id)
    keys = [prefix + sku for sku in skus]
    window = rate_window(context, request)

    def fetch(client: redis.Redis) -> tuple[list[Any], RateCounts]:
        return counted_round_trip(client, [("MGET", *keys)], window)

    try:
        (values,), counts = redis_guarded(fetch)
    except RedisUnavailableError as error:
        _outage_log(context, error)
        try:
            return hot_path_sql(lambda: _from_database(context.retailer_id, skus))[0], True
        except ApiError:
            (values,), counts = _redis_last_resort(fetch)
    rate_limit_enforce(context, counts, window)
    bodies: dict[str, Body | None] = {}
    unresolved = []
    for sku, value in zip(skus, values, strict=True):
        try:
            body = None if value is None else snapshot_decode(value)
        except UnreadableSnapshotError:
            body, value = None, None
        if value is None:
            unresolved.append(sku)
        else:
            bodies[sku] = body
    if unresolved:
        bodies.update(hot_path_sql(lambda: _fill(context.retailer_id, unresolved)))
        return {sku: bodies[sku] for sku in skus}, False
    return bodies, False


def _price(sku: str, body: Body, *, context: AuthContext, visitor: str | None, explain: bool, stale: bool) -> Body:
    currency = body["c"]
    if context.pricing_paused:
        row: Body = {"sku": sku, "price": body["b"], "currency": currency, "stale": stale}
        if explain:
            row["steps"] = [{"step": "paused", "price": body["b"]}]
        return row
    experiment = body["x"]
    variant = variant_for(experiment, visitor) if experiment else DEFAULT_PATH
    row = {"sku": sku, "price": body["p"][variant], "currency": currency}
    if experiment:
        row["variant"] = variant
    row["stale"] = stale
    if explain:
        row["steps"] = snapshot_steps(body)[variant]
    return row


def _options(request: HttpRequest, context: AuthContext) -> tuple[str | None, bool]:
    """The visitor and whether to explain. Steps name cost, the margin floor, inventory and
    competitor prices, so only a secret key (a retailer's server) gets them; a publishable key
    is in every page's source, and ``explain=1`` with it answers the price and variant only."""
    visitor = request.GET.get("visitor") or None
    if visitor is not None and len(visitor) > MAX_VISITOR_LENGTH:
        raise ApiError("malformed_request", f"visitor must be at most {MAX_VISITOR_LENGTH} characters.")
    explain = request.GET.get("explain")
    if explain not in (None, EXPLAIN):
        raise ApiError("malformed_request", f"explain must be {EXPLAIN} (or absent).")
    return visitor, context.is_secret and explain == EXPLAIN


def _json(body: Body, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), status=status, content_type="application/json")


def _serve(request: HttpRequest, skus_of: Callable[[HttpRequest], list[str]], single: bool) -> HttpResponse:
    context: AuthContext | None = None
    try:
        if request.method not in READ_METHODS:
            raise ApiError(
                "method_not_allowed",
                f"{request.method} is not allowed; use GET.",
                headers={"Allow": ", ".join(READ_METHODS)},
            )
        context = request_authenticate(request, secret_required=False)
        skus = skus_of(request)
        visitor, explain = _options(request, context)
        bodies, stale = _lookup(context, request, skus)
        prices = [
            _price(sku, body, context=context, visitor=visitor, explain=explain, stale=stale)
            for sku, body in bodies.items()
            if body is not None
        ]
        if single:
            if not prices:
                raise ApiError("unknown_sku", f"No active product has the SKU {skus[0]!r}.")
            response = _json(prices[0])
        else:
            response = _json({"prices": prices, "missing": [sku for sku, body in bodies.items() if body is None]})
    except ApiError as error:
        response = error_response(error)
    return cors_apply(request, response, context)


def price_detail(request: HttpRequest, sku: str) -> HttpResponse:
    """``GET /v1/prices/{sku}``: one price, or 404 ``unknown_sku``."""

    def one(_: HttpRequest) -> list[str]:
        if not sku_valid(sku):
            raise invalid_sku([sku_problem(sku)])
        return [sku]

    return _serve(request, one, single=True)


def price_list(request: HttpRequest) -> HttpResponse:
    """``GET /v1/prices?skus=A,B``: up to 100 prices and the SKUs that are not sold."""
    return _serve(request, lambda req: _skus_param(req.GET.get("skus", "")), single=False)
