"""Fuzz every operation of the committed API contract (docs/openapi.yaml) against the real app.

schemathesis generates requests from the contract, valid and invalid (wrong types, missing
or out-of-range parameters, odd bodies, undeclared methods), sends them through Django's
WSGI application to the PostgreSQL and Redis of the test run, and checks every answer:
never a 5xx, only documented status codes, the documented content type and body, an
``Allow`` header on a 405, no success without credentials or with bad ones, a request the
contract calls invalid refused, one it calls valid accepted (except where ``UNSTATED_RULES``
names a rule the contract cannot state); and every error is the JSON envelope of
``app/errors.py``. ``test_openapi_contract`` keeps the served schema
equal to the committed one, so this holds the running API to the file clients read.

Each operation is one test (``...[GET /v1/prices]``), run as alice with her secret key; the
operations browsers call run again with her publishable key from her allowed origin, and
the staff operations with a staff session. Generation is derandomized with a fixed seed, so
every run sends the same requests; ``MAX_EXAMPLES`` bounds the random phase.

No operation is excluded. Rotating a key cannot lock the test out (the old key stays valid
for the grace period), and the fuzzer cannot guess the prefix of one of alice's keys to
revoke it. Operations that start work (rules, policy, pause, events) answer once the job
row or the queued batch is written; no worker is needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.wsgi import application
from conftest import Tenant
from pricing.services import product_upsert
from workers.models import DeadLetter

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
# With the coverage phase: 20-30 s for the whole file on an idle 2-core machine. The long run
# (``python bench/api_fuzz_long.py``, not in CI) sets API_FUZZ_EXAMPLES to 200 or more.
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES") or 25)
STAFF_SESSION_KEY = "apifuzzstaffsession0000000000001"  # stored by the `staff_session` fixture
CSRF_TOKEN = "apifuzzcsrftoken0000000000000001"
PRODUCT = {"name": "Trail shoe", "currency": "USD", "base_price": "100.00", "cost": "40.00", "list_price": "150.00"}

# Where the contract cannot state a rule, a schema-valid request may rightly be refused with a
# 400: ``positive_data_acceptance`` is off for these operations only (the others are held to it).
UNSTORABLE_KEY = "an object key holding NUL or a lone surrogate is refused (400 invalid_characters)"
UNSTATED_RULES = {
    "events_ingest": "a sku is required for every type but page_view",
    "v1_products_update": "cost plus the minimum margin must not exceed list_price",
    "v1_products_bulk_create": "cost plus the minimum margin must not exceed list_price",
    "v1_pricing_policy_update": "rounding_ending must be below rounding_step",
    "v1_rules_create": "params depend on kind",
    "v1_rules_partial_update": "params depend on kind",
    "price_history_list": "the cursor is opaque: only a next or previous link is one",
    "products_list": "the cursor is opaque: only a next or previous link is one",
    # The three below were always open: a larger contract (503 on every operation, the notifications
    # operations) moved the generator's draws (same seed), and it found them. "price"/"signal" are
    # strings whose decimal places depend on the currency or the signal's rule; a fuzzed body key
    # may hold a NUL.
    "v1_competitor_prices_update": "price is a decimal string with the product currency's minor units",
    "v1_demand_update": "signal is a decimal string of at most 4 places, at most MAX_SIGNAL",
    "v1_keys_rotate_create": UNSTORABLE_KEY,
    "v1_webhook_endpoints_replay_create": UNSTORABLE_KEY,
    "v1_webhook_endpoints_create": "the URL's host must resolve to a public address; known event types",
    "v1_webhook_endpoints_partial_update": "the URL's host must resolve to a public address; known event types",
    "v1_notification_addresses_create": "Django's email validator is stricter than format: email",
    "v1_notification_addresses_confirm_retrieve": "the token must be one a confirmation email carried",
    "backups_list": "the cursor is opaque: only a next or previous link is one",
    "backup_files_list": "after_b64 is opaque; a prefix must be relative, without '..' (backups.paths)",
    "backup_file_download": "a path must be relative, without '..' (backups.paths)",
    "backup_file_by_bytes_download": "path_b64 must be base64 of a relative path, without '..' (backups.paths)",
    "backup_restore": "prefix and target must be relative, without '..' (backups.paths)",
    "backup_policy_update": UNSTORABLE_KEY,
    "ops_deadletters_list": "a NUL character in task is refused (400 invalid_characters: PostgreSQL cannot store it)",
}
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20250131,
        # Credentials come from the test, never from the generator: a generated "Bearer x"
        # header would shadow the publishable key of the browser test.
        "generation": {"mode": "all", "deterministic": True, "database": "none", "with-security-parameters": False},
        # Sent as a cookie by schemathesis itself, so its auth checks know it is a real session.
        "auth": {"openapi": {"cookieAuth": {"api_key": STAFF_SESSION_KEY}}},
        "checks": {
            # A schema-valid request may still be refused for what no contract states: a SKU
            # that does not exist (404), a key or origin that is not allowed (401, 403), an
            # Idempotency-Key sent again with another body (422), a rate limit (429).
            "positive_data_acceptance": {"expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]},
        },
    }
)
contract = schemathesis.openapi.from_path(CONTRACT, config=CONFIG)
contract.app = application

key_operations = contract.exclude(path_regex="^/ops/")
browser_operations = contract.include(operation_id=["prices_list", "price_retrieve", "events_ingest"])
staff_operations = contract.include(path_regex="^/ops/")

fuzz = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # The examples of one operation share its tenant and database transaction on purpose: what
    # one example created (a product, a rule) is there for the next.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def events_happen_now(case: schemathesis.Case) -> None:
    """Move the generated times of an events batch into the accepted window, so valid batches reach
    the queue (202) instead of all being refused as ``event_too_old`` (generated times are years old).

    Only date-times are moved; a time of another type or shape stays, to stay invalid.
    """
    if case.operation.label != "POST /v1/events" or not isinstance(case.body, dict):
        return
    events = case.body.get("events")
    for event in events if isinstance(events, list) else []:
        ts = event.get("ts") if isinstance(event, dict) else None
        if isinstance(event, dict) and isinstance(ts, str) and ts[:2] in ("19", "20"):
            event["ts"] = timezone.now().isoformat()


def call_and_validate(case: schemathesis.Case, **kwargs: Any) -> None:
    """Send the case and run every check, but ``positive_data_acceptance`` where a rule is unstated."""
    unstated = case.operation.definition.raw.get("operationId") in UNSTATED_RULES
    case.call_and_validate(excluded_checks=[positive_data_acceptance] if unstated else None, **kwargs)


@schemathesis.check  # registered: runs on every response, after the built-in checks
def error_is_the_json_envelope(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every 4xx and 5xx, documented or not, is ``{"error": {"code", "message", "request_id"}}`` as JSON."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0] == "application/json", f"an error answered as {content_type!r}"
    error = response.json()["error"]
    assert {"code", "message", "request_id"} <= error.keys(), f"the error lacks fields: {error}"
    assert error["request_id"] == response.headers["x-request-id"][0], "request_id is not the X-Request-ID"
    return True


@pytest.fixture
def served_in_the_test_transaction() -> Iterator[None]:
    """Serve through the WSGI app inside the test's transaction, as Django's test client does.

    The WSGI handler closes the database connection after each request (``close_old_connections``),
    which would end the transaction pytest-django rolls back after the test.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def catalog(alice: Tenant) -> None:
    """Products under the SKUs the fuzzer tries first ("0", and "SKU-1" of the contract's examples),
    so the product, price, signal and analytics operations also answer for a product that exists."""
    for sku in ("0", "SKU-1"):
        product_upsert(retailer_id=alice.retailer.id, sku=sku, data=PRODUCT, actor="test")


@key_operations.parametrize()
@fuzz
@pytest.mark.usefixtures("catalog", "broker_redis", "served_in_the_test_transaction")
def test_fuzzed_requests_with_a_secret_key_get_documented_answers(case: schemathesis.Case, alice: Tenant) -> None:
    events_happen_now(case)
    call_and_validate(case, headers={"Authorization": f"Bearer {alice.secret_key}"})


@browser_operations.parametrize()
@fuzz
@pytest.mark.usefixtures("catalog", "broker_redis", "served_in_the_test_transaction")
def test_fuzzed_browser_requests_with_a_publishable_key_get_documented_answers(
    case: schemathesis.Case, alice: Tenant
) -> None:
    events_happen_now(case)
    call_and_validate(case, params={"key": alice.publishable_key}, headers={"Origin": alice.origin})


@pytest.fixture
def staff_session(admin_client: Client) -> None:
    """A signed-in staff session stored under the fixed key the fuzzer sends."""
    signed_in = admin_client.session
    Session.objects.create(
        session_key=STAFF_SESSION_KEY,
        session_data=signed_in.encode(dict(signed_in.items())),
        expire_date=signed_in.get_expiry_date(),
    )


@pytest.fixture
def dead_letters(db: None) -> None:
    """Letters under the ids the fuzzer tries first, so the staff reads and the replay find one."""
    for letter_id in (0, 1):
        DeadLetter.objects.create(
            id=letter_id,
            task_name="notifications.email_drain",
            idempotency_key=f"fuzz-{letter_id}",
            task_id=f"task-{letter_id}",
            queue="email",
            exception="SMTPServerDisconnected",
        )


@staff_operations.parametrize()
@fuzz
@pytest.mark.usefixtures("staff_session", "dead_letters", "served_in_the_test_transaction")
def test_fuzzed_staff_requests_with_a_session_get_documented_answers(case: schemathesis.Case) -> None:
    call_and_validate(case, cookies={django_settings.CSRF_COOKIE_NAME: CSRF_TOKEN}, headers={"X-CSRFToken": CSRF_TOKEN})
