"""Celery tasks of the API: thin adapters over its services."""

from __future__ import annotations

from celery import shared_task

from openai_compat.responses import store


@shared_task(ignore_result=True)
def prune_responses() -> int:
    """Hourly (CELERY_BEAT_SCHEDULE): delete the stored responses past `RESPONSES_TTL`."""
    return store.prune()
