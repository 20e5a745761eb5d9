"""Root URLs. Apps are included by dotted string so ``app/`` imports no domain app."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from app import health
from app.api_docs import ApiDocsView

handler400 = "app.errors.handler400"
handler403 = "app.errors.handler403"
handler404 = "app.errors.handler404"
handler500 = "app.errors.handler500"

urlpatterns = [
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("admin/", admin.site.urls),
    path("v1/schema", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs", ApiDocsView.as_view(url_name="schema"), name="docs"),
    path("v1/", include("app.tenancy.urls")),
    path("", include("workers.urls")),
    path("v1/", include("pricing.urls")),
    path("v1/", include("analytics.urls")),
    path("v1/", include("notifications.urls")),
    path("", include("notifications.tracking_urls")),
    path("v1/", include("backups.urls")),
    path("demo/", include("analytics.demo_urls")),
]
