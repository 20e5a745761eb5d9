"""Django's PostgreSQL backend, with ``CONN_HEALTH_CHECKS`` at most once per ``DB_HEALTH_CHECK_INTERVAL``.

Django checks a persistent connection (a ``SELECT 1`` round trip) before the first query of
every web request and of every Celery task. An ingest batch made five round trips (that
check, ``BEGIN``, the budget lock, the ingest statement, ``COMMIT``), and py-spy under
``bench/ingest_bench.py`` put about 15 % of a batch's time in the check. A connection whose
check passed less than the interval ago is trusted without one. If the server went away
within that interval, the next statement fails instead, as it already does when the server
goes away between the check and the statement: the web answers the JSON 503
``database_unavailable`` and a reliable task waits for the database without spending its
retries (:func:`app.db_availability.database_unreachable`); Django then drops the broken
connection at the end of the request or task, and the next one connects afresh.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    checked_at = float("-inf")  # monotonic time of the last passed check (or of the connect)
    health_check_done: bool  # Django's two (set in __init__ and connect), declared for the type checker
    health_check_enabled: bool

    def connect(self) -> None:
        super().connect()
        self.checked_at = time.monotonic()

    def close_if_health_check_failed(self) -> None:
        recently = time.monotonic() - self.checked_at < settings.DB_HEALTH_CHECK_INTERVAL
        if self.connection is not None and self.health_check_enabled and not self.health_check_done and recently:
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
        if self.connection is not None and self.health_check_done:
            self.checked_at = time.monotonic()
