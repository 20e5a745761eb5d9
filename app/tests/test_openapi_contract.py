"""The committed schema (docs/openapi.yaml) is the contract: the served one must not drift.

Regenerate after an intended API change with ``./sf schema``.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
UNDOCUMENTED_PREFIXES = ("admin/", "v1/schema", "v1/docs", "v1/js/", "healthz", "readyz", "metrics", "demo", "anymail/")


def _served_schema(client: Client) -> dict:
    response = client.get("/v1/schema")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_served_schema_matches_the_committed_contract(client: Client) -> None:
    assert _served_schema(client) == yaml.safe_load(CONTRACT.read_text()), (
        "The API changed but docs/openapi.yaml did not: run ./sf schema and review the diff."
    )


def test_schema_generates_without_warnings(tmp_path: Path) -> None:
    call_command("spectacular", "--file", str(tmp_path / "schema.yaml"), "--validate", "--fail-on-warn")


def _routes(patterns: list, prefix: str = "") -> list[str]:
    routes: list[str] = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            routes += _routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            routes.append(prefix + str(entry.pattern))
    return routes


def test_every_api_route_is_documented(client: Client) -> None:
    documented = {path.lstrip("/") for path in _served_schema(client)["paths"]}
    api_routes = {
        route.replace("<str:", "{").replace("<int:", "{").replace("<path:", "{").replace(">", "}")
        for route in _routes(get_resolver().url_patterns)
        if not route.startswith(UNDOCUMENTED_PREFIXES)
    }
    assert api_routes - documented == set()


def test_docs_page_is_served(client: Client) -> None:
    assert client.get("/v1/docs").status_code == 200


def test_every_operation_declares_the_database_unavailable_503() -> None:
    """Every operation authenticates or reads through PostgreSQL, so each may answer it."""
    contract = yaml.safe_load(CONTRACT.read_text())
    operations = [
        (method, path, operation)
        for path, item in contract["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "patch", "delete")
    ]
    responses = contract["components"]["responses"]

    def described(response: dict) -> str:
        return str(responses[response["$ref"].rsplit("/", 1)[1]] if "$ref" in response else response)

    missing = [
        f"{method.upper()} {path}"
        for method, path, operation in operations
        if "database_unavailable" not in described(operation["responses"].get("503", {"description": ""}))
    ]
    assert operations
    assert missing == []
