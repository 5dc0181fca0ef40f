"""The first-party web front. Until the chat page lands, `/` explains what this server is."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def landing(request: HttpRequest) -> HttpResponse:
    prefix = f"/{settings.API_PREFIX}" if settings.API_PREFIX else ""
    api_base = request.build_absolute_uri(f"{prefix}/v1")
    return render(request, "mirror/landing.html", {"api_base": api_base, "gateway": settings.ENABLE_GATEWAY})
