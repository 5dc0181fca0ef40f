"""Celery wiring: Redis as broker when REDIS_URL is set, else a broker in files under var/ (no server).

The file broker works only where every process shares one disk: the embedded default (SQLite, as
`make run` runs it). With PostgreSQL a worker or beat may run on another machine or dyno, where its
queue would silently never meet the web process's, so there they refuse to start without REDIS_URL.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import import_modules, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat2api_site.settings")

app = Celery("chat2api")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@import_modules.connect
def refuse_unshared_broker(**_: object) -> None:
    from django.conf import settings

    if not settings.REDIS_URL and not settings.EMBEDDED:
        raise SystemExit(
            "chat2api: set REDIS_URL: with a DATABASE_URL other than SQLite the worker and beat may run apart "
            "from the web process, and the file broker under var/ is not shared between machines"
        )


@worker_ready.connect
def refresh_on_start(**_: object) -> None:
    """The seed's start-up pass: refresh whatever is due, without forcing the rest."""
    app.send_task("tokens.tasks.refresh_due")
