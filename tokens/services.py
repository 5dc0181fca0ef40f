"""Writes and reads of credentials: the only code that touches the `Credential` table.

The operator's actions (disable, enable, clear cooldowns, clear all) each bump `updated_at`, which changes the
pool signature, so every gateway process reloads within `POOL_RELOAD_SECONDS`.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime

from django.core.cache import cache
from django.db import transaction
from django.db.models import Case, Count, F, Max, QuerySet, Value, When
from django.utils import timezone

from tokens import oauth, probe
from tokens.models import Credential, Status, Usage
from tokens.state import ANY_MODEL

TEST_FAILED = "test failed: "


def pool_signature() -> tuple:
    """Changes whenever a credential is added, edited or removed (status changes bump `updated_at`)."""
    agg = Credential.objects.aggregate(n=Count("id"), last=Max("updated_at"))
    return agg["n"], agg["last"]


def usable_credentials() -> list[Credential]:
    return list(Credential.objects.usable())


def cooldowns_of(cred: Credential) -> dict[str, float]:
    """The credential's cooldowns as epoch seconds, keyed by model (`*` for all models)."""
    found: dict[str, float] = {}
    if cred.cooldown_until:
        found[ANY_MODEL] = cred.cooldown_until.timestamp()
    for model, iso in (cred.model_cooldowns or {}).items():
        found[model] = datetime.fromisoformat(iso).timestamp()
    return found


def mark_cooling(cred_id: int, until: float, model: str | None, reason: str) -> None:
    """Record a cooldown, per model when the upstream scoped it to one."""
    with transaction.atomic():
        cred = Credential.objects.select_for_update().filter(pk=cred_id).first()
        if cred is None:
            return
        when = datetime.fromtimestamp(until, tz=UTC)
        if model:
            now = timezone.now()
            live = {m: t for m, t in cred.model_cooldowns.items() if datetime.fromisoformat(t) > now}
            cred.model_cooldowns = {**live, model: when.isoformat()}
        else:
            cred.cooldown_until = when
        if cred.status == Status.ACTIVE:
            cred.status = Status.COOLING
        cred.last_error = reason
        cred.save(update_fields=["model_cooldowns", "cooldown_until", "status", "last_error", "updated_at"])


def mark_ejected(cred_id: int, reason: str) -> None:
    """An outlier ejection (`tokens.health`): cooling, half-open once it ends, with the reason for the admin.
    Its end time lives in the pool state only, so that a reload does not turn it into an explicit cooldown."""
    Credential.objects.filter(pk=cred_id).update(
        status=Case(When(status=Status.ACTIVE, then=Value(Status.COOLING)), default=F("status")),
        last_error=reason,
        updated_at=timezone.now(),
    )


def mark_recovered(cred_id: int) -> None:
    """Cooling → active once no cooldown of the credential is still running."""
    now = timezone.now()
    cred = Credential.objects.filter(pk=cred_id, status=Status.COOLING).first()
    if cred is None:
        return
    live = {m: t for m, t in cred.model_cooldowns.items() if datetime.fromisoformat(t) > now}
    if live or (cred.cooldown_until and cred.cooldown_until > now):
        return
    Credential.objects.filter(pk=cred_id, status=Status.COOLING).update(
        status=Status.ACTIVE, cooldown_until=None, model_cooldowns={}, updated_at=now
    )


def mark_status(cred_id: int, status: str, reason: str) -> None:
    Credential.objects.filter(pk=cred_id).update(status=status, last_error=reason, updated_at=timezone.now())


def add_usage(batch: Counter[tuple[int, str, str]]) -> None:
    """Apply counters gathered off the request path: per credential and per (credential, model).

    `update()` leaves `updated_at` (the pool signature) alone, so counting never reloads the pool.
    """
    per_model: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
    for (cred_id, model, field), count in batch.items():
        per_model[(cred_id, model)][field] = count
    now = timezone.now()
    live = set(Credential.objects.filter(pk__in={c for c, _ in per_model}).values_list("pk", flat=True))
    with transaction.atomic():  # rows in one order on every node, so concurrent flushes never deadlock
        for (cred_id, model), counts in sorted(per_model.items()):
            if cred_id not in live:
                continue  # deleted since
            Usage.objects.get_or_create(credential_id=cred_id, model=model[:200])
            Usage.objects.filter(credential_id=cred_id, model=model[:200]).update(
                **{name: F(name) + value for name, value in counts.items()}
            )
            Credential.objects.filter(pk=cred_id).update(
                request_count=F("request_count") + counts.get("requests", 0),
                error_count=F("error_count") + counts.get("errors", 0),
                last_used_at=now,
            )


def save_quotas(batch: Mapping[int, Mapping[str, str]]) -> None:
    """The plan quota last reported per credential, for the admin's process when there is no Redis
    (`tokens.quota`); `update()` leaves `updated_at` alone, so this never reloads the pool."""
    for cred_id, fields in sorted(batch.items()):
        Credential.objects.filter(pk=cred_id).update(quota=dict(fields))


def own_access_token(refresh_token: str) -> str:
    """A caller's own RefreshToken, exchanged once and cached until shortly before the AccessToken expires."""
    key = "own-at:" + hashlib.sha256(refresh_token.encode()).hexdigest()
    token = cache.get(key)
    if token is None:
        refreshed = oauth.exchange(refresh_token)
        ttl = (refreshed.expires_at - timezone.now()).total_seconds() - 60 if refreshed.expires_at else 3600
        token = refreshed.access_token
        cache.set(key, token, max(60, int(ttl)))
    return token


def test_credential(cred_id: int) -> str:
    """The admin's "Test", run by a worker: its outcome lands on the row, a failure as the last error (which a
    later success clears). `update()` leaves `updated_at` alone: the pool does not reload for it."""
    cred = Credential.objects.filter(pk=cred_id).first()
    if cred is None:
        return "deleted"
    works, detail = probe.probe(cred)
    if works:
        Credential.objects.filter(pk=cred_id, last_error__startswith=TEST_FAILED).update(last_error="")
    else:
        Credential.objects.filter(pk=cred_id).update(last_error=f"{TEST_FAILED}{detail}")
    return detail


def rotate_encryption() -> int:
    """Read every secret (with whichever key) and write it back encrypted with the first key."""
    with transaction.atomic():
        rows = list(Credential.objects.select_for_update())
        for row in rows:
            Credential.objects.filter(pk=row.pk).update(
                access_token=row.access_token, refresh_token=row.refresh_token, api_key=row.api_key
            )
    return len(rows)


# -- the operator's actions -----------------------------------------------------------------------------------
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
