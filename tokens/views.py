"""Probes for load balancers: `/healthz` (the process answers) and `/readyz` (it can serve)."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse

from tokens.models import Credential


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "credentials": _credentials()}
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


def _redis() -> str:
    try:
        cache.set("readyz", "1", 5)
        return "ok" if cache.get("readyz") == "1" else "error: no round trip"
    except Exception as exc:  # any client error means "not ready", whatever its class
        return f"error: {type(exc).__name__}"
