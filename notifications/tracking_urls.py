"""Email provider tracking webhooks (``/anymail/<esp>/tracking/``): anymail checks the
signature or basic auth, then ``notifications.tracking`` suppresses bounced addresses.
Outside the API contract: the provider, not a retailer, calls them, in its own format."""

from django.urls import include, path

urlpatterns = [path("anymail/", include("anymail.urls"))]
