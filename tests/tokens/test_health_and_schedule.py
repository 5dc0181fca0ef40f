"""Load-balancer probes, and the refresh schedule as Celery beat sees it (in the database, pausable)."""

from __future__ import annotations

import pytest
from celery.schedules import crontab
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from chat2api_site.celery import app
from tests.factories import chatgpt_account, openai_key
from tokens import tasks

pytestmark = pytest.mark.django_db


def test_healthz_and_readyz(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and set(health) == {"status", "pool"}
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"] == {
        "database": "ok",
        "credentials": "no usable credential",
        "credential_keys": "ok",
    }
    openai_key("http://127.0.0.1:9/v1", "sk-ok-ready")
    assert client.get("/readyz").status_code == 200


def test_readyz_checks_redis_when_configured(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # through the fixture only: it restores every change it made
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    openai_key("http://127.0.0.1:9/v1", "sk-ok-ready")
    body = client.get("/readyz").json()
    assert body["checks"]["redis"].startswith("error")


@pytest.mark.django_db(transaction=True)  # the scheduler closes its database connection
def test_beat_tasks_carry_their_expiry_into_the_database(settings):
    app.conf.beat_schedule = settings.CELERY_BEAT_SCHEDULE  # exactly as settings.py declares it
    DatabaseScheduler(app=app)
    assert PeriodicTask.objects.get(name="refresh-due-credentials").expire_seconds == 240
    entry = DatabaseScheduler(app=app).schedule["refresh-due-credentials"]
    assert entry.options["expires"] == 240  # what beat puts on each message it sends


@pytest.mark.django_db(transaction=True)  # the scheduler closes its database connection
def test_beat_schedule_lives_in_the_database():
    schedule = {
        "refresh-due-credentials": {"task": "tokens.tasks.refresh_due", "schedule": 300.0},
        "forced-refresh": {
            "task": "tokens.tasks.refresh_all",
            "schedule": crontab(minute=0, hour=3, day_of_month="*/4"),
        },
    }
    app.conf.beat_schedule = schedule
    DatabaseScheduler(app=app)
    tasks_by_name = {t.name: t for t in PeriodicTask.objects.all()}
    assert tasks_by_name["refresh-due-credentials"].interval.every == 300
    forced = tasks_by_name["forced-refresh"].crontab
    assert (forced.minute, forced.hour, forced.day_of_month) == ("0", "3", "*/4")
    # an operator pauses it in the admin; a restart of beat keeps it paused
    PeriodicTask.objects.filter(name="forced-refresh").update(enabled=False)
    DatabaseScheduler(app=app)
    assert not PeriodicTask.objects.get(name="forced-refresh").enabled


def test_due_pass_refreshes_only_due_credentials(oauth_settings, fake_oauth):
    due = chatgpt_account("", refresh_token="rt-ok-due")
    chatgpt_account("eyJno.refresh.token")
    app.conf.task_always_eager = True  # run the enqueued refresh here instead of on a worker
    try:
        assert tasks.refresh_due() == 1
    finally:
        app.conf.task_always_eager = False
    assert list(fake_oauth.calls) == ["rt-ok-due"]
    due.refresh_from_db()
    assert due.access_token.startswith("eyJ")
