"""Operator actions on credentials (the admin's buttons).

Each is one query that also bumps `updated_at`, which changes the pool signature, so every gateway
process reloads within `POOL_RELOAD_SECONDS`.
"""

from __future__ import annotations

from django.db.models import Case, F, QuerySet, Value, When
from django.utils import timezone

from tokens.models import Credential, Status


def disable(credentials: QuerySet[Credential]) -> int:
    return credentials.update(status=Status.DISABLED, updated_at=timezone.now())


def enable(credentials: QuerySet[Credential]) -> int:
    """Back into service with a clean slate: no cooldowns, no last error."""
    return credentials.update(
        status=Status.ACTIVE,
        cooldown_until=None,
        model_cooldowns={},
        last_error="",
        updated_at=timezone.now(),
    )


def clear_cooldown(credentials: QuerySet[Credential]) -> int:
    """Drop every cooldown; a credential that was only cooling is active again, other statuses stay."""
    return credentials.update(
        cooldown_until=None,
        model_cooldowns={},
        status=Case(When(status=Status.COOLING, then=Value(Status.ACTIVE)), default=F("status")),
        updated_at=timezone.now(),
    )


def clear_all() -> int:
    """Delete every credential; the row count in the pool signature drops, so the pools empty too."""
    deleted, _ = Credential.objects.all().delete()
    return deleted
