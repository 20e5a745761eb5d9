from django.urls import path

from app.schema import documented
from pricing.apis import catalog, prices, rules, switches
from pricing.hotpath import price_detail, price_list

app_name = "pricing"

urlpatterns = [
    path("prices", documented(price_list, prices.PriceListApi), name="prices"),
    path("prices/<str:sku>", documented(price_detail, prices.PriceDetailApi), name="price"),
    path("products", catalog.ProductListApi.as_view(), name="products"),
    path("products/bulk", catalog.ProductBulkApi.as_view(), name="products-bulk"),
    path("products/<str:sku>", catalog.ProductDetailApi.as_view(), name="product"),
    path("products/<str:sku>/price-history", catalog.PriceHistoryApi.as_view(), name="price-history"),
    path("products/<str:sku>/lowest-price", catalog.LowestPriceApi.as_view(), name="lowest-price"),
    path("competitor-prices/<str:sku>", catalog.CompetitorPriceApi.as_view(), name="competitor-price"),
    path("demand/<str:sku>", catalog.DemandSignalApi.as_view(), name="demand"),
    path("rules", rules.RuleListApi.as_view(), name="rules"),
    path("rules/<int:rule_id>", rules.RuleDetailApi.as_view(), name="rule"),
    path("repricing-jobs/<int:job_id>", rules.RepricingJobDetailApi.as_view(), name="repricing-job"),
    path("pricing/pause", switches.PricingPauseApi.as_view(), name="pause"),
    path("pricing/resume", switches.PricingResumeApi.as_view(), name="resume"),
    path("pricing/policy", switches.PricingPolicyApi.as_view(), name="policy"),
]
