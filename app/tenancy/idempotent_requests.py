"""``Idempotency-Key`` for POSTs that create things.

Same key + same body → the first answer again (status, body, ``Content-Type``,
``Location``, ``Retry-After``); same key while the first is still running → 409;
same key with another body → 422.

The claim is committed first (so a concurrent repeat sees it and answers 409); the
effect and the stored answer then commit in **one** transaction, with the claim row
locked: if storing the answer fails, the effect is rolled back with it, so a retry
runs the effect once, never twice. Only a successful answer (status below 400) is
kept: an error — a failed validation, or any 4xx or 5xx — changes nothing, releases
the claim, and the same key may be sent again (with a corrected body).

A view may keep a redacted copy of its answer (:func:`keep_instead`): key rotation
never stores a raw secret key; its replay answers ``"key": null``.

A claim left by a process that died is taken over after ``ABANDONED_AFTER_SECONDS``
(its transaction died with it, so nothing of its effect remains); records expire
after ``IDEMPOTENCY_KEY_TTL_SECONDS``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from app.errors import ApiError
from app.tenancy.authentication import auth_context
from app.tenancy.models import IdempotentRequest

HEADER = "Idempotency-Key"
ABANDONED_AFTER_SECONDS = 60
MAX_KEY_LENGTH = 255
CLAIM_ATTEMPTS = 3  # insert, or take over; a claim released meanwhile is inserted again
# Headers a client acts on (where the created thing is, when to look again). The rest belong
# to each answer: X-Request-ID is the repeat's own, CORS and Vary follow the repeat's request.
REPLAYED_HEADERS = ("Location", "Retry-After")
_KEPT_DATA = "idempotent_kept_data"


def keep_instead(response: Response, data: Any) -> Response:
    """Keep ``data`` for replays instead of ``response.data`` (for an answer holding a secret)."""
    setattr(response, _KEPT_DATA, data)
    return response


def _replay(earlier: IdempotentRequest) -> HttpResponse:
    headers = earlier.response_headers or {}  # None: kept before headers were
    replay = HttpResponse(
        bytes(earlier.response_body or b""),
        status=earlier.response_status,
        content_type=headers.get("Content-Type", JSONRenderer.media_type),
    )
    for name in REPLAYED_HEADERS:
        if name in headers:
            replay[name] = headers[name]
    replay["Idempotent-Replayed"] = "true"
    return replay


def _insert(retailer_id: int, route: str, key: str, body_hash: str) -> IdempotentRequest | None:
    try:
        with transaction.atomic():
            return IdempotentRequest.objects.create(retailer_id=retailer_id, route=route, key=key, body_hash=body_hash)
    except IntegrityError:
        return None


def _take_over(earlier: IdempotentRequest, body_hash: str, now: Any) -> IdempotentRequest | None:
    """Take an expired record or an abandoned claim; waits while a live request holds its row lock."""
    expired = earlier.created_at < now - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    abandoned = not earlier.completed and earlier.created_at < now - timedelta(seconds=ABANDONED_AFTER_SECONDS)
    if not (expired or abandoned):
        return None
    # The WHERE is checked again on the newest row version: a request that completed meanwhile keeps its record.
    taken = IdempotentRequest.objects.filter(
        pk=earlier.pk, created_at=earlier.created_at, completed=earlier.completed
    ).update(
        created_at=now,
        body_hash=body_hash,
        completed=False,
        response_status=None,
        response_body=None,
        response_headers=None,
    )
    if taken != 1:
        return None
    earlier.refresh_from_db()
    return earlier


def _claim(retailer_id: int, route: str, key: str, body_hash: str) -> IdempotentRequest | HttpResponse:
    """Insert the in-flight claim, or answer from (or refuse because of) an earlier one."""
    for _ in range(CLAIM_ATTEMPTS):
        claim = _insert(retailer_id, route, key, body_hash)
        if claim is not None:
            return claim
        earlier = IdempotentRequest.objects.filter(retailer_id=retailer_id, route=route, key=key).first()
        if earlier is None:
            continue  # released since our insert failed
        claim = _take_over(earlier, body_hash, timezone.now())
        if claim is not None:
            return claim
        earlier = IdempotentRequest.objects.filter(pk=earlier.pk).first() or earlier
        if earlier.body_hash != body_hash:
            raise ApiError("idempotency_key_reused")
        if not earlier.completed:
            raise ApiError("idempotency_key_in_flight")
        return _replay(earlier)
    raise ApiError("idempotency_key_in_flight")


def _kept(response: HttpResponse) -> tuple[bytes, dict[str, str]]:
    """The body and headers to replay; a DRF answer is kept as the JSON it renders to."""
    if isinstance(response, Response):
        body = JSONRenderer().render(getattr(response, _KEPT_DATA, response.data))
        content_type = JSONRenderer.media_type
    else:
        body, content_type = response.content, response["Content-Type"]
    kept = {name: response[name] for name in REPLAYED_HEADERS if name in response}
    return body, {"Content-Type": content_type, **kept}


class _UnkeptAnswerError(Exception):
    """An error answer: leave the transaction so its writes roll back, and answer it unkept."""

    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _run_and_keep(claim: IdempotentRequest, run: Callable[[], HttpResponse]) -> HttpResponse:
    """Run the effect and store its answer in one transaction, holding the claim's row lock."""
    with transaction.atomic():
        held = IdempotentRequest.objects.select_for_update().filter(
            pk=claim.pk, created_at=claim.created_at, completed=False
        )
        if not list(held.values_list("pk", flat=True)):
            raise ApiError("idempotency_key_in_flight")  # taken over by a repeat after ABANDONED_AFTER_SECONDS
        response = run()
        if response.status_code >= 400:
            raise _UnkeptAnswerError(response)
        body, headers = _kept(response)
        held.update(completed=True, response_status=response.status_code, response_body=body, response_headers=headers)
    return response


def idempotent_post(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a DRF ``post`` method whose view authenticates with an API key."""

    @wraps(method)
    def wrapper(view: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if not key:
            return method(view, request, *args, **kwargs)
        if len(key) > MAX_KEY_LENGTH:
            raise ApiError("malformed_request", f"{HEADER} must be at most {MAX_KEY_LENGTH} characters.")
        body_hash = hashlib.sha256(request.body).hexdigest()
        route = request.resolver_match.route if request.resolver_match else request.path
        claim = _claim(auth_context(request).retailer_id, route, key, body_hash)
        if isinstance(claim, HttpResponse):
            return claim
        try:
            return _run_and_keep(claim, lambda: method(view, request, *args, **kwargs))
        except _UnkeptAnswerError as refused:
            _release(claim)
            return refused.response
        except BaseException:
            _release(claim)
            raise

    wrapper.takes_idempotency_key = True  # type: ignore[attr-defined]  # the OpenAPI schema documents it (app.schema)
    return wrapper


def _release(claim: IdempotentRequest) -> None:
    """Let the same key be sent again: the request changed nothing."""
    IdempotentRequest.objects.filter(pk=claim.pk, created_at=claim.created_at, completed=False).delete()
