from django.urls import path

from analytics import apis, insert, openapi
from app.schema import documented

urlpatterns = [
    path("events", documented(apis.events_ingest_view, openapi.EventsIngestApi), name="events-ingest"),
    path("analytics/skus/<str:sku>", apis.AnalyticsSkuApi.as_view(), name="analytics-sku"),
    path("analytics/summary", apis.AnalyticsSummaryApi.as_view(), name="analytics-summary"),
    path("js/storefabric.js", insert.insert_current_view, name="insert-current"),
    path("js/storefabric.<str:digest>.js", insert.insert_hashed_view, name="insert-hashed"),
]
