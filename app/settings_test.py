"""Settings for the test run: real services, one namespace per pytest-xdist worker.

Each xdist worker gets its own pair of Redis databases (cache, broker) and its own
test database (pytest-django adds the ``_gwN`` suffix), so parallel tests never
share a queue, a key or a row. ``SF_TEST_REDIS_DB_BASE`` moves the whole block
of Redis databases, for two test runs on one Redis server.
"""

from __future__ import annotations

import os

_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_index = int(_worker.removeprefix("gw") or 0)
_base = int(os.environ.get("SF_TEST_REDIS_DB_BASE", "0"))
_redis = os.environ.get("SF_TEST_REDIS", "redis://127.0.0.1:6379").rstrip("/")

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/storefabric")
os.environ["REDIS_URL"] = f"{_redis}/{_base + 2 * _index}"
os.environ["CELERY_BROKER_URL"] = f"{_redis}/{_base + 2 * _index + 1}"
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-use-0123456789abcdef")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("BACKUP_ENCRYPTION_KEY", "0123456789abcdef" * 4)
os.environ.setdefault("METRICS_TOKEN", "test-metrics-token")
os.environ.setdefault("REDIS_KEY_PREFIX", f"sftest{_index}")
# Cache and broker are two databases of one server here (workers.broker_config); child
# processes (workers, gunicorn, relays) inherit it.
os.environ.setdefault("BROKER_CONFIG_CHECK", "warn")
# Test endpoints are local HTTP servers on loopback; nothing else may be reached.
os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
os.environ.setdefault("WEBHOOK_HTTPS_ONLY", "0")
os.environ.setdefault("WEBHOOK_RESOLVER", "app.outbound_http.loopback_resolver")
os.environ.setdefault("ANYMAIL_WEBHOOK_SECRET", "tracker:test-tracking-secret")

from app.settings import *  # noqa: E402,F403

# The test database is named after DATABASE_URL's database (test_<name>; pytest-xdist adds _gwN),
# so two test runs on one PostgreSQL server with different DATABASE_URLs never share one.
if "TEST" in DATABASES["default"] and not os.environ.get("TEST_DATABASE_NAME"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}"}  # noqa: F405
