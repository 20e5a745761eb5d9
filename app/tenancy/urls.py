from django.urls import path

from app.tenancy import apis

urlpatterns = [
    path("retailer", apis.RetailerDetailApi.as_view()),
    path("keys/rotate", apis.KeyRotateApi.as_view()),
    path("keys/<str:prefix>/revoke", apis.KeyRevokeApi.as_view()),
    path("origins", apis.OriginListApi.as_view()),
]
