"""``Idempotency-Key`` for POSTs that create things.

Same key + same body → the first answer again (status, body, ``Content-Type``,
``Location``, ``Retry-After``); same key while the first is still running → 409;
same key with another body → 422. Answers of 5xx are not kept
(the client should retry). A claim left by a process that died is taken over
after ``ABANDONED_AFTER_SECONDS``; records expire after IDEMPOTENCY_KEY_TTL_SECONDS.
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
# Headers a client acts on (where the created thing is, when to look again). The rest belong
# to each answer: X-Request-ID is the repeat's own, CORS and Vary follow the repeat's request.
REPLAYED_HEADERS = ("Location", "Retry-After")


def _claim(retailer_id: int, route: str, key: str, body_hash: str) -> IdempotentRequest | HttpResponse:
    """Insert the in-flight claim, or answer from (or refuse because of) an earlier one."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return IdempotentRequest.objects.create(retailer_id=retailer_id, route=route, key=key, body_hash=body_hash)
    except IntegrityError:
        pass
    earlier = IdempotentRequest.objects.get(retailer_id=retailer_id, route=route, key=key)
    expired = earlier.created_at < now - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS)
    abandoned = not earlier.completed and earlier.created_at < now - timedelta(seconds=ABANDONED_AFTER_SECONDS)
    if expired or abandoned:
        taken = IdempotentRequest.objects.filter(pk=earlier.pk, created_at=earlier.created_at).update(
            created_at=now,
            body_hash=body_hash,
            completed=False,
            response_status=None,
            response_body=None,
            response_headers=None,
        )
        if taken == 1:
            earlier.refresh_from_db()
            return earlier
    if earlier.body_hash != body_hash:
        raise ApiError("idempotency_key_reused")
    if not earlier.completed:
        raise ApiError("idempotency_key_in_flight")
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


def _kept(response: HttpResponse) -> tuple[bytes, dict[str, str]]:
    """The body and headers to replay; a DRF answer is kept as the JSON it renders to."""
    if isinstance(response, Response):
        body, content_type = JSONRenderer().render(response.data), JSONRenderer.media_type
    else:
        body, content_type = response.content, response["Content-Type"]
    kept = {name: response[name] for name in REPLAYED_HEADERS if name in response}
    return body, {"Content-Type": content_type, **kept}


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
            response = method(view, request, *args, **kwargs)
        except Exception:
            claim.delete()
            raise
        if response.status_code >= 500:
            claim.delete()
            return response
        body, headers = _kept(response)
        IdempotentRequest.objects.filter(pk=claim.pk).update(
            completed=True, response_status=response.status_code, response_body=body, response_headers=headers
        )
        return response

    wrapper.takes_idempotency_key = True  # type: ignore[attr-defined]  # the OpenAPI schema documents it (app.schema)
    return wrapper
