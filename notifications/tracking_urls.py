"""Email provider tracking webhooks (``/anymail/<esp>/tracking/``): anymail checks the
signature or basic auth, then ``notifications.tracking`` suppresses bounced addresses.
Outside the API contract: the provider, not a retailer, calls them, in its own format.
Mounted only once ``ANYMAIL_WEBHOOK_SECRET`` is set (anymail refuses every call without
it, as a 500): without it the path is a 404."""

from django.conf import settings
from django.urls import include, path

urlpatterns = [path("anymail/", include("anymail.urls"))] if settings.ANYMAIL.get("WEBHOOK_SECRET") else []
