"""Embedded mode is exactly "none of the three URLs set"; a partial set stops at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODE_VARS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")


def _settings_probe(extra: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in MODE_VARS and k != "DJANGO_SETTINGS_MODULE"}
    env.update(extra)
    env["DJANGO_SETTINGS_MODULE"] = "app.settings"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); from django.conf import settings; {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_partial_set_names_what_is_missing() -> None:
    result = _settings_probe({"DATABASE_URL": "postgres://postgres@127.0.0.1/x"}, "pass")
    assert result.returncode != 0
    assert "Missing: REDIS_URL, CELERY_BROKER_URL" in result.stderr


def test_none_set_is_embedded_sqlite_and_local_valkey() -> None:
    result = _settings_probe(
        {}, "print(settings.EMBEDDED, settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)"
    )
    assert result.returncode == 0, result.stderr
    embedded, engine, broker = result.stdout.split()
    assert embedded == "True"
    assert engine == "django.db.backends.sqlite3"
    assert broker.startswith("redis://127.0.0.1:")


def test_production_settings_pass_the_deploy_check() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "app.settings",
            "DEBUG": "0",
            "SECRET_KEY": "a-real-secret-" + "x" * 50,
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/1",
            "ALLOWED_HOSTS": "api.storefabric.example",
        }
    )
    env.pop("SECURE_SSL_REDIRECT", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_without_a_secret_key_refuses_to_start() -> None:
    result = _settings_probe(
        {
            "DEBUG": "0",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/1",
            "SECRET_KEY": "",
        },
        "pass",
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_on_postgresql_without_a_secret_key_refuses_to_start() -> None:
    """DEBUG=1 outside embedded mode signs real sessions: no constant fallback key."""
    result = _settings_probe(
        {
            "DEBUG": "1",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/1",
            "SECRET_KEY": "",
        },
        "print(settings.SECRET_KEY)",
    )
    assert result.returncode != 0, result.stdout
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize(
    ("trusted", "proxies", "expected"),
    [
        ("", "", "('HTTP_X_FORWARDED_PROTO', 'https') 0"),  # defaults: behind our TLS proxy, peer is the client
        ("0", "2", "None 2"),  # reached directly for TLS, yet two proxies of ours forward the address
        ("1", "0", "('HTTP_X_FORWARDED_PROTO', 'https') 0"),
    ],
)
def test_the_tls_header_and_the_client_address_are_trusted_by_separate_settings(trusted, proxies, expected) -> None:
    env = {
        "DEBUG": "0",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/1",
        "SECRET_KEY": "x" * 50,
        **({"SECURE_PROXY_SSL_HEADER_TRUSTED": trusted} if trusted else {}),
        **({"TRUSTED_PROXY_COUNT": proxies} if proxies else {}),
    }
    result = _settings_probe(
        env, "print(getattr(settings, 'SECURE_PROXY_SSL_HEADER', None), settings.TRUSTED_PROXY_COUNT)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
