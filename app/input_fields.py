"""Serializer fields for request bodies that take JSON as written, not as DRF would coerce it.

DRF's ``CharField`` turns a number into a string (``"competitor": 0`` becomes ``"0"``) and its
``BooleanField`` reads ``0`` and ``"yes"`` as booleans, so bodies the contract
(``docs/openapi.yaml``: ``type: string`` / ``boolean``) calls invalid were accepted. Request
bodies use these fields; the API fuzz test (``app/tests/test_api_fuzz.py``,
``negative_data_rejection``) holds the contract to them. (Amounts are read by
``pricing.money``, which takes decimal strings only.)
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A ``CharField`` that refuses anything but a JSON string (400 ``validation_failed``)."""

    default_error_messages = {"not_a_string": "Send a string (in quotes), not {kind}."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        return str(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    """A ``BooleanField`` that takes only JSON ``true`` and ``false``."""

    default_error_messages = {"not_a_boolean": "Send true or false, not {kind}."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("not_a_boolean", kind=type(data).__name__)
        return data
