"""Writes of the pricing app. Other apps call these (analytics: ``demand_signal_set``)."""

from pricing.services.products import BulkResult, UpsertResult, product_upsert, products_bulk_upsert
from pricing.services.refresh import RefreshResult, snapshots_refresh
from pricing.services.repricing import repricing_job_create, repricing_shard_run
from pricing.services.rules import rule_create, rule_delete, rule_update
from pricing.services.signals import competitor_price_set, demand_signal_set, demand_signals_set
from pricing.services.switches import policy_update, pricing_pause_set

__all__ = [
    "BulkResult",
    "RefreshResult",
    "UpsertResult",
    "competitor_price_set",
    "demand_signal_set",
    "demand_signals_set",
    "policy_update",
    "pricing_pause_set",
    "product_upsert",
    "products_bulk_upsert",
    "repricing_job_create",
    "repricing_shard_run",
    "rule_create",
    "rule_delete",
    "rule_update",
    "snapshots_refresh",
]
