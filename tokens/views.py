"""Probes for load balancers: `/healthz` (the process answers) and `/readyz` (it can serve)."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse

from tokens.crypto import KEYS_MISMATCH, undecryptable
from tokens.models import Credential
from tokens.pool import pool

# Rows whose secrets each /readyz decrypts (newest first); start-up checks them all.
READYZ_KEY_SAMPLE = 20


def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers; `pool` tells which state of the credentials table it serves (empty before its first
    request), so an operator (or a test) can see when an edit has reached it."""
    return JsonResponse({"status": "ok", "pool": pool.version})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "credentials": _credentials(), "credential_keys": _credential_keys()}
    if settings.REDIS_URL:
        checks["redis"] = _redis()
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


def _database() -> str:
    try:
        Credential.objects.exists()
    except DatabaseError as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def _credentials() -> str:
    try:
        return "ok" if Credential.objects.usable().exists() else "no usable credential"
    except DatabaseError:
        return "unknown"


def _credential_keys() -> str:
    try:
        count = undecryptable(Credential, limit=READYZ_KEY_SAMPLE)
    except DatabaseError:
        return "unknown"
    return f"error: {KEYS_MISMATCH.format(count=count)}" if count else "ok"


def _redis() -> str:
    try:
        cache.set("readyz", "1", 5)
        return "ok" if cache.get("readyz") == "1" else "error: no round trip"
    except Exception as exc:  # any client error means "not ready", whatever its class
        return f"error: {type(exc).__name__}"
