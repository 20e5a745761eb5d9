"""Beat reprices snapshots whose schedule window ended; a second beat creates no second job."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from pricing.models import PriceSnapshot, RepricingJob
from pricing.services import rule_create
from pricing.services.repricing import schedule_boundaries_reprice
from pricing.tasks import schedule_boundaries
from pricing.tests.conftest import product_put, shards_run_all

ALL_DAY = {
    "name": "All day",
    "params": {
        "windows": [
            {
                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                "start": "00:00",
                "end": "24:00",
                "adjust_percent": "-10",
            }
        ]
    },
}


def test_expired_snapshots_are_repriced_once_per_boundary(alice) -> None:
    product_put(alice, "A-1", base_price="100.00")
    product_put(alice, "B-2", base_price="50.00")
    rule_create(retailer_id=alice.retailer.id, kind="schedule", values=ALL_DAY, actor="test")
    shards_run_all()
    snapshot = PriceSnapshot.objects.get(sku="A-1")
    assert snapshot.effective_price == Decimal("90.00")
    assert snapshot.valid_until > timezone.now()

    PriceSnapshot.objects.filter(sku="A-1").update(valid_until=timezone.now() - timedelta(seconds=5))
    (job,) = schedule_boundaries_reprice()
    assert (job.skus_total, job.reason) == (1, "schedule boundary")
    assert schedule_boundaries_reprice() == [job]
    assert schedule_boundaries.run(idempotency_key="beat") == 1
    assert RepricingJob.objects.filter(reason="schedule boundary").count() == 1

    shards_run_all()
    assert PriceSnapshot.objects.get(sku="A-1").valid_until > timezone.now()
    assert schedule_boundaries_reprice() == []
