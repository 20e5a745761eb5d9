"""The Celery app, configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")

celery_app = Celery("storefabric")
celery_app.config_from_object("workers.celery_config", namespace="")
celery_app.autodiscover_tasks(["workers", "pricing", "analytics"])
