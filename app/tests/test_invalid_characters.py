"""Text PostgreSQL cannot store, sent through every operation of the contract: 400 ``invalid_characters``, never a 5xx.

Each case puts a NUL (or, in JSON, a lone surrogate or a bad object key) in one place
of one operation of ``docs/openapi.yaml`` — a path parameter, a query parameter, a
stored header, a body string at some depth — with the credentials the operation takes
(secret key, publishable key from an allowed origin, or a staff session), and expects
the guard's answer naming that place. A JSON body is checked when a view reads it, before
any serializer or service sees it (a view that refuses the request first never reads it:
the catalog holds the product the cases name, so the views get that far). The events batch is validated per event by its
own validation (``analytics.validation``); there only "no 5xx" is asserted here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import yaml
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from conftest import Tenant
from pricing.services import product_upsert

CONTRACT = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text())
METHODS = ("get", "post", "put", "patch", "delete")
NUL = "\x00"
PLAIN_VALUES = {"sku": "SKU-1", "prefix": "pk_abcdefgh"}  # any other path parameter is an id
# (body, the field the answer names): a string value, a string deep in a list, an object key.
BODIES = [
    ({"name": f"Trail{NUL}shoe", "kind": "pk"}, "name"),
    ({"params": {"tags": ["ok", "\ud800"]}, "kind": "pk"}, "params.tags[1]"),
    ({"products": [{f"na{NUL}me": "x"}]}, "products[0].na\\u0000me"),
]


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # as in the contract, with {name} placeholders
    auth: str  # secretKey, publishableKey or cookieAuth
    path_values: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    field: str = ""
    guarded: bool = True  # False: only "no 5xx" is promised here (the events batch)

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path} {self.field}"


def _auth(operation: dict[str, Any]) -> str:
    schemes = [name for requirement in operation.get("security", []) for name in requirement]
    return schemes[0] if schemes else "none"  # a public operation (a confirmation link)


def _cases() -> list[Case]:
    cases = []
    for path, operations in CONTRACT["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            parameters = operation.get("parameters", [])
            paths = {p["name"]: PLAIN_VALUES.get(p["name"], "1") for p in parameters if p["in"] == "path"}
            base = {"method": method, "path": path, "auth": _auth(operation), "path_values": paths}
            for parameter in [p for p in parameters if p["in"] == "path"]:
                name = parameter["name"]
                # A number parameter holding a NUL matches no route: the answer names the path.
                named = name if parameter["schema"]["type"] == "string" else "path"
                cases.append(Case(**{**base, "path_values": {**paths, name: f"A{NUL}"}}, field=named))
            for name in [p["name"] for p in parameters if p["in"] == "query"] + ["undocumented"]:
                cases.append(Case(**base, query={name: f"x{NUL}y"}, field=name))
            for header in ("Idempotency-Key", "X-Request-ID"):
                cases.append(Case(**base, headers={header: f"retry{NUL}1"}, field=header))
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                for body, named in BODIES:
                    cases.append(Case(**base, body=body, field=named, guarded=path != "/v1/events"))
    return cases


CASES = _cases()


def _client(case: Case, tenant: Tenant, staff: User) -> tuple[APIClient, dict[str, str]]:
    client = APIClient()
    client.raise_request_exception = False  # a crash must show as the 500 it is, not as a test error
    query: dict[str, str] = {}
    if case.auth == "secretKey":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.secret_key}")
    elif case.auth == "publishableKey":
        client.credentials(HTTP_ORIGIN=tenant.origin)
        query["key"] = tenant.publishable_key
    elif case.auth == "none":
        pass
    else:
        client.force_login(staff)
    return client, query


def _send(case: Case, tenant: Tenant, staff: User) -> Any:
    client, query = _client(case, tenant, staff)
    path = case.path
    for name, value in case.path_values.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    url = path + "?" + urlencode({**query, **case.query}) if (query or case.query) else path
    headers = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in case.headers.items()}
    body = json.dumps(case.body) if case.body is not None else None
    return client.generic(case.method.upper(), url, body or "", content_type="application/json", **headers)


def test_every_operation_of_the_contract_is_covered() -> None:
    operations = {(c.method, c.path) for c in CASES}
    documented = {(m, p) for p, ops in CONTRACT["paths"].items() for m in ops if m in METHODS}
    assert operations == documented
    assert len(operations) >= 30


@pytest.fixture
def catalog(alice: Tenant) -> None:
    """The product the cases name, so a view that reads its body after finding the product gets that far."""
    product_upsert(retailer_id=alice.retailer.id, sku="SKU-1", data={"name": "Shoe", "base_price": "1.00"}, actor="t")


def _wrong(case: Case, response: Any) -> str | None:
    """What is wrong with the answer to ``case``, or None."""
    if response.status_code >= 500:
        return f"{case.label}: {response.status_code}"
    if not case.guarded:
        return None
    error = response.json().get("error", {}) if response.status_code == 400 else {}
    if error.get("code") != "invalid_characters" or case.field not in [row["field"] for row in error["details"]]:
        return f"{case.label}: {response.status_code} {response.content[:200]!r}"
    return None


OPERATIONS = sorted({(c.method, c.path) for c in CASES})


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in OPERATIONS])
@pytest.mark.usefixtures("catalog", "broker_redis")
def test_unstorable_text_anywhere_is_a_400_naming_the_field(method: str, path: str, alice: Tenant) -> None:
    staff = User.objects.create(username="staff", is_staff=True, is_superuser=True)
    cases = [c for c in CASES if (c.method, c.path) == (method, path)]

    wrong = [problem for case in cases if (problem := _wrong(case, _send(case, alice, staff)))]

    assert len(cases) >= 3
    assert wrong == []


@pytest.mark.parametrize(
    ("method", "url", "body", "named"),
    [
        ("GET", "/v1/products/%00", None, "sku"),
        ("POST", "/v1/keys/%00/revoke", None, "prefix"),
        ("PUT", "/v1/products/SKU-9", {"name": "Trail\u0000shoe", "base_price": "1.00"}, "name"),
    ],
)
def test_the_reported_500s_are_400s(alice: Tenant, method: str, url: str, body: Any, named: str) -> None:
    client = alice.client()
    client.raise_request_exception = False
    response = client.generic(method, url, json.dumps(body) if body else "", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == named


def test_a_clean_request_passes_the_guard(alice: Tenant) -> None:
    response = alice.client().put(
        "/v1/products/SKU-9", {"name": "Trail \ufffd shoe \U0001f45f", "base_price": "1.00"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["name"] == "Trail \ufffd shoe \U0001f45f"
