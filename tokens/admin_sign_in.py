"""The admin's "Sign in a ChatGPT account" page: a thin adapter over `tokens.sign_in`.

The page shows the issuer's address and the user code; its script (`static/tokens/codex_sign_in.js`, no
inline script) asks `poll/` for a step at the issuer's interval and goes to the list once the account is in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from tokens import sign_in
from tokens.oauth import RefreshFailed


class CodexSignInMixin:
    """Mixed into the credential admin; uses its `_can_import`, `_page` and `admin_site`."""

    admin_site: AdminSite
    opts: Any  # the model's `_meta`
    _can_import: Callable[[HttpRequest], bool]
    _page: Callable[..., HttpResponse]

    def sign_in_urls(self) -> list[URLPattern]:
        view, name = self.admin_site.admin_view, f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("sign-in/", view(self.sign_in_view), name=f"{name}_sign_in"),
            path("sign-in/poll/", view(require_POST(self.sign_in_poll_view)), name=f"{name}_sign_in_poll"),
        ]

    def sign_in_view(self, request: HttpRequest) -> HttpResponse:
        if not self._can_import(request):
            raise PermissionDenied
        login, error = sign_in.running(request.session), ""
        if request.method == "POST":
            try:
                login = sign_in.start(request.session)
            except RefreshFailed as exc:
                error = exc.reason
        return self._page(request, "sign_in.html", "Sign in a ChatGPT account", login=login, error=error)

    def sign_in_poll_view(self, request: HttpRequest) -> JsonResponse:
        if not self._can_import(request):
            raise PermissionDenied
        step = sign_in.step(request.session)
        if step.state == "done":
            messages.success(request, step.message)
        changelist = reverse(f"{self.admin_site.name}:tokens_credential_changelist")
        return JsonResponse({"state": step.state, "message": step.message, "next": changelist})
