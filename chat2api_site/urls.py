from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from openai_compat import metrics
from tokens.views import healthz, readyz

prefix = f"{settings.API_PREFIX}/" if settings.API_PREFIX else ""
API_ROOT = f"/{prefix}v1/"

tokens_page = RedirectView.as_view(pattern_name="admin:tokens_credential_changelist")

urlpatterns = [
    path(f"{prefix}v1/", include("openai_compat.urls")),
    path("admin/", admin.site.urls),
    path("tokens", tokens_page),
    path("healthz", healthz),
    path("readyz", readyz),
    path("metrics", metrics.view),
    path("", include("mirror.urls")),
]
if prefix:
    urlpatterns.append(path(f"{prefix}tokens", tokens_page))
