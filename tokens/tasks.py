"""Celery tasks: thin adapters that take ids and call `tokens.refreshing`, `tokens.services`, `tokens.discovery` and
`tokens.usage`."""

from __future__ import annotations

from celery import shared_task

from tokens import discovery, refreshing, services, usage


@shared_task(ignore_result=True)
def refresh_one(cred_id: int, force: bool = False) -> str:
    return refreshing.refresh_credential(cred_id, force).result


@shared_task(ignore_result=True)
def probe_one(cred_id: int) -> str:
    return services.test_credential(cred_id)


@shared_task(ignore_result=True)
def fetch_models(cred_id: int) -> str:
    return discovery.fetch_models(cred_id).detail


@shared_task(ignore_result=True)
def refresh_due() -> int:
    """The pool's periodic pass: enqueue a refresh for every credential close to expiry, spread out with
    jitter, and a model fetch for every `openai` key whose model list is missing or old."""
    for cred_id in discovery.due_ids():
        fetch_models.delay(cred_id)
    return _enqueue(refreshing.due_credential_ids(force=False), force=False)


@shared_task(ignore_result=True)
def refresh_all() -> int:
    """The seed's forced pass (SCHEDULED_REFRESH): every credential with a RefreshToken."""
    return _enqueue(refreshing.due_credential_ids(force=True), force=True)


@shared_task(ignore_result=True)
def prune_request_log() -> int:
    return usage.prune()


def _enqueue(ids: list[int], force: bool) -> int:
    for cred_id in ids:
        refresh_one.apply_async((cred_id, force), countdown=refreshing.jitter())
    return len(ids)
