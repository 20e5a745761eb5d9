from django.urls import path

from analytics import apis, insert

urlpatterns = [
    path("events", apis.events_ingest_view, name="events-ingest"),
    path("analytics/skus/<str:sku>", apis.AnalyticsSkuApi.as_view()),
    path("analytics/summary", apis.AnalyticsSummaryApi.as_view()),
    path("js/storefabric.js", insert.insert_current_view, name="insert-current"),
    path("js/storefabric.<str:digest>.js", insert.insert_hashed_view, name="insert-hashed"),
]
