"""Celery wiring: Redis as broker when REDIS_URL is set, else a broker in files under var/ (no server)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat2api_site.settings")

app = Celery("chat2api")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def refresh_on_start(**_: object) -> None:
    """The seed's start-up pass: refresh whatever is due, without forcing the rest."""
    app.send_task("tokens.tasks.refresh_due")
