from django.urls import path

from analytics import demo

urlpatterns = [
    path("", demo.demo_storefront_view, name="demo-storefront"),
    path("counts", demo.demo_counts_view, name="demo-counts"),
]
