"""The Celery app, configured from Django settings through ``workers.celery_config``.

Task modules are discovered from ``INSTALLED_APPS`` (``<app>/tasks.py``), so a new
app's tasks are found without touching this file.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")

celery_app = Celery("storefabric")
celery_app.config_from_object("workers.celery_config", namespace="")
celery_app.autodiscover_tasks()
