"""The demo storefront: the seeded demo retailer's products as a retailer's page would show them.

``/demo/`` renders a product grid with server-rendered prices, the insert's
script tag with the demo publishable key, and a live panel that polls
``/demo/counts`` (the demo retailer's counted events). Served only when
``DEMO_STOREFRONT`` is on (embedded mode and DEBUG by default); the counts
answer CORS for the demo retailer's allowed origins, so the page also works
when it is served from another origin, as on a real retailer's site.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from analytics.selectors import retailer_summary
from app.errors import ApiError, error_response
from app.tenancy.models import ApiKey, Retailer
from pricing.money import amount_format
from pricing.selectors import product_list, snapshots_of

DEMO_RETAILER = "Demo Retailer"  # the name manage.py seed_demo gives it
PRODUCTS_SHOWN = 12
COUNTS_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class DemoProduct:
    sku: str
    name: str
    price: str
    currency: str


def _demo_retailer() -> Retailer:
    if not settings.DEMO_STOREFRONT:
        raise ApiError("not_found", "The demo storefront is off (DEMO_STOREFRONT).")
    retailer = Retailer.objects.filter(name=DEMO_RETAILER).prefetch_related("origins").first()
    if retailer is None:
        raise ApiError("not_found", "No demo retailer yet: run python manage.py seed_demo.")
    return retailer


def _publishable_key(retailer: Retailer) -> str:
    key = (
        ApiKey.objects.filter(
            retailer=retailer, kind=ApiKey.Kind.PUBLISHABLE, revoked_at__isnull=True, expires_at__isnull=True
        )
        .order_by("-created_at")
        .first()
    )
    if key is None:
        raise ApiError("not_found", "The demo retailer has no active publishable key: run seed_demo again.")
    return key.publishable_value


def _products(retailer: Retailer) -> list[DemoProduct]:
    products = list(product_list(retailer_id=retailer.id).filter(active=True)[:PRODUCTS_SHOWN])
    effective = {
        s.sku: s.effective_price for s in snapshots_of(retailer_id=retailer.id, skus=[p.sku for p in products])
    }
    return [
        DemoProduct(
            sku=p.sku,
            name=p.name,
            price=amount_format(effective.get(p.sku, p.base_price), p.currency),
            currency=p.currency,
        )
        for p in products
    ]


def demo_storefront_view(request: HttpRequest) -> HttpResponse:
    """``GET /demo/``: the storefront page."""
    try:
        retailer = _demo_retailer()
        context = {
            "retailer": retailer,
            "products": _products(retailer),
            "publishable_key": _publishable_key(retailer),
            "api_origin": request.build_absolute_uri("/").rstrip("/"),
        }
    except ApiError as error:
        return error_response(error)
    return render(request, "analytics/demo.html", context)


def demo_counts_view(request: HttpRequest) -> HttpResponse:
    """``GET /demo/counts``: the demo retailer's counted events of the last 24 hours (for the live panel)."""
    try:
        retailer = _demo_retailer()
    except ApiError as error:
        return error_response(error)
    until = timezone.now()
    summary = retailer_summary(retailer_id=retailer.id, since=until - COUNTS_WINDOW, until=until)
    body = {"totals": summary.totals, "top_skus": summary.top_skus[:5], "at": until.isoformat()}
    response = HttpResponse(orjson.dumps(body), content_type="application/json")
    response["Cache-Control"] = "no-store"
    response["Vary"] = "Origin"
    origin = request.headers.get("Origin")
    if origin and origin in {allowed.origin for allowed in retailer.origins.all()}:
        response["Access-Control-Allow-Origin"] = origin
    return response
