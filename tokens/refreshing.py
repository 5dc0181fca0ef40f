"""Keeping AccessTokens fresh: who refreshes, when, and exactly once across the whole cluster.

A refresh is claimed with one conditional UPDATE that must touch exactly one row (status → refreshing);
whoever loses the race waits for the winner's result instead of calling the token endpoint again. A
claim older than `REFRESH_CLAIM_SECONDS` is considered abandoned (its worker died) and may be taken over;
a credential refreshed more recently than that is not due again, unless forced or refused upstream.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from prometheus_client import Counter

from tokens import oauth
from tokens.models import Credential, Kind, Status

REFRESH_CLAIM_SECONDS = 60
REFRESHES = Counter("chat2api_refreshes", "AccessToken refreshes by outcome", ["outcome"])


@dataclass(frozen=True, slots=True)
class Outcome:
    credential_id: int
    result: str  # refreshed | failed | invalid | skipped
    detail: str = ""

    def __post_init__(self) -> None:
        REFRESHES.labels(self.result).inc()


def _claimable(force: bool) -> Q:
    now = timezone.now()
    statuses = [Status.ACTIVE, Status.COOLING, Status.NEEDS_REFRESH]
    if settings.ALLOW_RESET:
        statuses.append(Status.INVALID)
    abandoned = Q(status=Status.REFRESHING, refresh_claimed_at__lt=now - timedelta(seconds=REFRESH_CLAIM_SECONDS))
    expiring = Q(access_token_expires_at__isnull=True) | Q(
        access_token_expires_at__lt=now + timedelta(seconds=settings.REFRESH_AHEAD_SECONDS)
    )
    recent = Q(refresh_claimed_at__gte=now - timedelta(seconds=REFRESH_CLAIM_SECONDS))
    due = Q(status=Status.NEEDS_REFRESH) | (expiring & ~recent)
    return (Q(status__in=statuses) | abandoned) & (Q() if force else due)


def claim(cred_id: int, force: bool = False) -> bool:
    """Take the right to refresh `cred_id`; True for exactly one caller cluster-wide."""
    now = timezone.now()
    rows = (
        Credential.objects.filter(_claimable(force), pk=cred_id)
        .exclude(refresh_token="")
        .update(status=Status.REFRESHING, refresh_claimed_at=now, updated_at=now)
    )
    return rows == 1


def refresh_credential(cred_id: int, force: bool = False) -> Outcome:
    """Refresh one credential if it is due (or `force`); never calls the endpoint twice for one claim."""
    if not claim(cred_id, force):
        return Outcome(cred_id, "skipped", "not due, no RefreshToken, or another worker is refreshing it")
    cred = Credential.objects.get(pk=cred_id)
    try:
        fresh = _exchange(cred)
    except oauth.RefreshFailed as exc:
        return _failed(cred, exc)
    # The new tokens land in the one write that releases our claim: a rotated (single-use) RefreshToken is
    # stored before anyone may claim again, so no RefreshToken is ever sent twice.
    mine = Credential.objects.filter(pk=cred_id, status=Status.REFRESHING, refresh_claimed_at=cred.refresh_claimed_at)
    if mine.update(**fresh, status=Status.ACTIVE, last_error="", updated_at=timezone.now()) != 1:
        return Outcome(cred_id, "failed", "the refresh outlived its claim and another worker took it over")
    return Outcome(cred_id, "refreshed")


def _exchange(cred: Credential) -> dict[str, Any]:
    """Call the token endpoint of `cred`'s kind; the columns the refresh rewrites."""
    if cred.kind == Kind.CODEX:
        tokens = oauth.refresh(cred.refresh_token)
        who = tokens.account
        return {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "access_token_expires_at": tokens.expires_at,
            "plan": who.plan or cred.plan,
            "account_id": cred.account_id or who.account_id,
            "user_id": cred.user_id or who.user_id,
        }
    fresh = oauth.exchange(cred.refresh_token)
    return {
        "access_token": fresh.access_token,
        "refresh_token": fresh.refresh_token,
        "access_token_expires_at": fresh.expires_at,
    }


def _failed(cred: Credential, exc: oauth.RefreshFailed) -> Outcome:
    if exc.permanent:
        status, result = Status.INVALID, "invalid"
    else:
        usable = cred.access_token_expires_at and cred.access_token_expires_at > timezone.now()
        status, result = (Status.ACTIVE if usable else Status.NEEDS_REFRESH), "failed"
    Credential.objects.filter(pk=cred.pk).update(
        status=status, last_error=f"refresh failed: {exc.reason}", updated_at=timezone.now()
    )
    return Outcome(cred.pk, result, exc.reason)


def wait_for_refresh(cred_id: int, timeout: float) -> Credential | None:
    """Block until nobody is refreshing `cred_id` any more; the fresh row, or None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cred = Credential.objects.filter(pk=cred_id).first()
        if cred is None or cred.status != Status.REFRESHING:
            return cred
        time.sleep(0.05)
    return None


def refresh_inline(cred_id: int) -> Credential | None:
    """At request time: refresh now (or wait for whoever already is), then hand back the row to use."""
    refresh_credential(cred_id)
    return wait_for_refresh(cred_id, timeout=settings.UPSTREAM_CONNECT_TIMEOUT + 30)


def due_credential_ids(force: bool) -> list[int]:
    return list(Credential.objects.filter(_claimable(force)).exclude(refresh_token="").values_list("pk", flat=True))


def jitter() -> float:
    """Spread a pass's refreshes so a thousand accounts do not hit the token endpoint in one second."""
    return random.uniform(0, settings.REFRESH_JITTER_SECONDS)
