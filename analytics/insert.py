"""Serving the JavaScript insert: a stable URL with a short life and content-hashed copies with a long one.

* ``/v1/js/storefabric.js`` — the current build; ``max-age`` of 5 minutes and an
  ``ETag``, so a new release reaches every page within minutes and a revalidation
  costs a 304.
* ``/v1/js/storefabric.<hash>.js`` — the same bytes under their content hash;
  cached for a year (``immutable``). An unknown hash is a 404.

Both are sent gzipped to clients that accept it (compressed once, at first use).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified

from analytics.jsmin import MINIFIED
from app.errors import ApiError, error_response

STABLE_MAX_AGE = 300
HASHED_MAX_AGE = 365 * 24 * 3600


@dataclass(frozen=True)
class InsertAsset:
    digest: str
    plain: bytes
    gzipped: bytes

    @property
    def hashed_name(self) -> str:
        return f"storefabric.{self.digest}.js"


@cache
def insert_asset() -> InsertAsset:
    """The built insert, read once per process."""
    plain = MINIFIED.read_bytes()
    return InsertAsset(
        digest=hashlib.sha256(plain).hexdigest()[:16],
        plain=plain,
        gzipped=gzip.compress(plain, compresslevel=9, mtime=0),
    )


def _accepts_gzip(request: HttpRequest) -> bool:
    return "gzip" in request.headers.get("Accept-Encoding", "").lower()


def _serve(request: HttpRequest, asset: InsertAsset, cache_control: str) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return error_response(
            ApiError("method_not_allowed", "The insert is fetched with GET.", headers={"Allow": "GET"})
        )
    compressed = _accepts_gzip(request)
    etag = f'"{asset.digest}{"-gz" if compressed else ""}"'
    if etag in (tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(
            asset.gzipped if compressed else asset.plain, content_type="text/javascript; charset=utf-8"
        )
        if compressed:
            response["Content-Encoding"] = "gzip"
    response["ETag"] = etag
    response["Cache-Control"] = cache_control
    response["Vary"] = "Accept-Encoding"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    response["X-Storefabric-Insert"] = asset.hashed_name
    return response


def insert_current_view(request: HttpRequest) -> HttpResponse:
    """``GET /v1/js/storefabric.js``: the current build, revalidated every few minutes."""
    return _serve(request, insert_asset(), f"public, max-age={STABLE_MAX_AGE}")


def insert_hashed_view(request: HttpRequest, digest: str) -> HttpResponse:
    """``GET /v1/js/storefabric.<hash>.js``: an immutable build, cached for a year."""
    asset = insert_asset()
    if digest != asset.digest:
        return error_response(ApiError("not_found", f"No insert build {digest}; use /v1/js/storefabric.js."))
    return _serve(request, asset, f"public, max-age={HASHED_MAX_AGE}, immutable")
