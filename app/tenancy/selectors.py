"""Reads of the tenancy app."""

from __future__ import annotations

from app.errors import ApiError
from app.tenancy.models import ApiKey, Retailer


def retailer_get(*, retailer_id: int) -> Retailer:
    return Retailer.objects.prefetch_related("origins", "keys").get(pk=retailer_id)


def key_get(*, retailer_id: int, prefix: str) -> ApiKey:
    """A key of this retailer by prefix; another retailer's key is simply not found."""
    key = ApiKey.objects.filter(retailer_id=retailer_id, prefix=prefix).first()
    if key is None:
        raise ApiError("not_found", f"No key with prefix {prefix!r}.")
    return key
