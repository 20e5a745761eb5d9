"""The body we send is the envelope the OpenAPI description documents."""

from __future__ import annotations

import orjson
import pytest
import yaml

from app.tests.test_openapi_contract import CONTRACT
from notifications.envelope import envelope_body
from notifications.models import Delivery
from notifications.tests.factories import endpoint_make, event_announce

pytestmark = pytest.mark.django_db


def test_a_prices_changed_body_has_the_documented_fields(alice) -> None:
    schemas = yaml.safe_load(CONTRACT.read_text())["components"]["schemas"]
    endpoint_make(alice, "http://127.0.0.1:9/a")
    sku = {"sku": "A-1", "old_price": "10.00", "new_price": "9.00", "currency": "USD", "version": 2}
    event_announce(alice, cause_id="c1", reason="product write", page=1, pages=1, skus=[sku])

    body = orjson.loads(envelope_body(Delivery.objects.get().event))

    assert set(schemas["WebhookEnvelope"]["required"]) <= set(body)
    assert body["type"] in schemas["WebhookEnvelope"]["properties"]["type"]["enum"]
    data_schema = schemas["PricesChangedWebhookData"]
    assert set(data_schema["required"]) <= set(body["data"])
    assert set(data_schema["properties"]["skus"]["items"]["required"]) == set(body["data"]["skus"][0])
