from django.urls import path

from app.metrics import metrics_view
from workers import apis

urlpatterns = [
    path("metrics", metrics_view),
    path("ops/deadletters", apis.DeadLetterListApi.as_view()),
    path("ops/deadletters/<int:deadletter_id>", apis.DeadLetterDetailApi.as_view()),
    path("ops/deadletters/<int:deadletter_id>/replay", apis.DeadLetterReplayApi.as_view()),
]
