from django.urls import path

from notifications import apis, email_apis

urlpatterns = [
    path("webhook-endpoints", apis.EndpointListApi.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<int:endpoint_id>", apis.EndpointDetailApi.as_view(), name="webhook-endpoint"),
    path(
        "webhook-endpoints/<int:endpoint_id>/rotate-secret",
        apis.EndpointRotateApi.as_view(),
        name="webhook-endpoint-rotate",
    ),
    path(
        "webhook-endpoints/<int:endpoint_id>/deliveries",
        apis.DeliveryListApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
    path("webhook-endpoints/<int:endpoint_id>/ping", apis.EndpointPingApi.as_view(), name="webhook-endpoint-ping"),
    path(
        "webhook-endpoints/<int:endpoint_id>/replay", apis.EndpointReplayApi.as_view(), name="webhook-endpoint-replay"
    ),
    path("webhook-deliveries/<int:delivery_id>/retry", apis.DeliveryRetryApi.as_view(), name="webhook-delivery-retry"),
    path("notification-addresses", email_apis.AddressListApi.as_view(), name="notification-addresses"),
    path("notification-addresses/<int:address_id>", email_apis.AddressDetailApi.as_view(), name="notification-address"),
    path("notification-addresses/confirm", email_apis.AddressConfirmApi.as_view(), name="notification-address-confirm"),
    path("notifications", email_apis.NotificationListApi.as_view(), name="notifications"),
]
