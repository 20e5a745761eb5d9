"""pricing's part of a retailer's backup: the catalog as JSON lines (``settings.BACKUP_EXPORTERS``).

Streamed by SKU with ``QuerySet.iterator`` (2,000 rows per fetch), so memory stays flat at any
catalog size; deterministic (same catalog → same bytes), so an unchanged catalog stores no new chunk.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from pricing.models import Product
from pricing.money import amount_format

FIELDS = ("sku", "name", "currency", "base_price", "cost", "list_price", "inventory", "active", "updated_at")


def catalog_export_lines(*, retailer_id: int) -> Iterator[bytes]:
    """One line per product: ``{"type": "product", "sku": …, "base_price": "19.99", …}``."""
    products = Product.objects.filter(retailer_id=retailer_id).order_by("sku").values_list(*FIELDS)
    for sku, name, currency, base, cost, ceiling, inventory, active, updated_at in products.iterator(2000):
        yield (
            orjson.dumps(
                {
                    "type": "product",
                    "sku": sku,
                    "name": name,
                    "currency": currency,
                    "base_price": amount_format(base, currency),
                    "cost": None if cost is None else amount_format(cost, currency),
                    "list_price": None if ceiling is None else amount_format(ceiling, currency),
                    "inventory": inventory,
                    "active": active,
                    "updated_at": updated_at.isoformat(),
                }
            )
            + b"\n"
        )
