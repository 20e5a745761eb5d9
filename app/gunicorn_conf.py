"""gunicorn's configuration: the one home of the web server's settings.

Read by the Procfile's web line (``gunicorn -c python:app.gunicorn_conf``), the benchmarks
and the tests that start a real gunicorn, so all of them run what production runs. The
environment keeps the knobs the Procfile line had: ``WEB_BIND`` (default 0.0.0.0), ``PORT``
(8000), ``WEB_CONCURRENCY`` (5 processes: 2 x cores + 1 on 2 cores, see Benchmarks in the
README) and ``WEB_THREADS`` (1). Command-line options override these values. Importing it
reads only the environment (the benchmarks import it for their defaults).
"""

from __future__ import annotations

import os

GUNICORN_CONFIG = f"python:{__name__}"  # how a gunicorn command line names this module (-c)
DEFAULT_WORKERS = 5
DEFAULT_THREADS = 1

bind = [f"{os.environ.get('WEB_BIND') or '0.0.0.0'}:{os.environ.get('PORT') or 8000}"]  # noqa: S104 - behind the proxy
workers = int(os.environ.get("WEB_CONCURRENCY") or DEFAULT_WORKERS)
threads = int(os.environ.get("WEB_THREADS") or DEFAULT_THREADS)
worker_class = "app.gunicorn_worker.JsonErrorThreadWorker"
timeout = 30
graceful_timeout = 20

# The longest documented request line: GET /v1/prices?skus= with 100 SKUs of 64 characters
# (6,499 characters) plus key, visitor and explain is ~6.7 KB; gunicorn's default of 4,094
# refused it with a 414. 8,190 is gunicorn's maximum (0 would mean unlimited).
limit_request_line = 8190

# One access-log line per request, rendered by structlog like every other line (JSON in
# production, console in development: LOG_FORMAT), with the request id and no key in the URL.
accesslog = "-"
logger_class = "app.access_log.GunicornLogger"
