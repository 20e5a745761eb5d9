"""DRF throttle backed by the atomic Redis counter of :mod:`app.tenancy.ratelimit`.

DRF's own throttles read-modify-write the cache (not atomic) and cost an extra
round trip; this one shares the counter and the fail-open rule of the hot path.
"""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import BaseThrottle

from app.tenancy.authentication import AuthContext
from app.tenancy.ratelimit import rate_limit_check


class KeyRateThrottle(BaseThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        if isinstance(request.auth, AuthContext):
            rate_limit_check(request.auth, request._request)  # raises a 429 ApiError past the limit
        return True
