"""The environment of the notifications benchmarks (``notifications_bench``, ``notify_isolation_bench``),
set before Django is imported (so this module imports no project code at its top), and their database."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BENCH_ENV = {
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/storefabric_bench",
    "REDIS_URL": "redis://127.0.0.1:6379/12",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/13",
    "BROKER_CONFIG_CHECK": "warn",  # cache and broker are two databases of one server here
    "DJANGO_SETTINGS_MODULE": "app.settings",
    "SECRET_KEY": secrets.token_urlsafe(48),
    "BACKUP_ENCRYPTION_KEY": secrets.token_hex(32),  # required in production; unused here
    "SECURE_SSL_REDIRECT": "0",
    "LOG_FORMAT": "json",
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",  # the endpoints are on loopback
    "WEBHOOK_HTTPS_ONLY": "0",
    "EMAIL_HOST": "127.0.0.1",
}


def bench_environment_set() -> None:
    """This process's environment: ``BENCH_ENV`` where the caller set nothing, production otherwise."""
    for name, value in BENCH_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.update({"DEBUG": "0", "PYTHONPATH": str(ROOT)})


def bench_database_prepare() -> None:
    """Create the benchmark database if need be, and migrate it (after Django is set up)."""
    from bench.workers_bench import database_ensure

    database_ensure(os.environ["DATABASE_URL"])
    migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
    subprocess.run(migrate, cwd=ROOT, env=dict(os.environ), check=True)
