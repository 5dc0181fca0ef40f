"""The operator's token page: list, edit, import, disable/enable, clear cooldowns, clear all.

Secrets are never rendered whole: the list shows `secret_masked`, the change form uses a masked widget
(and masked read-only values for view-only users), `__str__` (used by history and delete pages) masks,
and last errors are redacted before display. Searching by secret is deliberately not offered: the term
would travel in the URL's query string (server logs, browser history) and be echoed in the search box.
"""

from __future__ import annotations

import re
import time
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from tokens import operations, quota
from tokens.admin_login import ThrottledLoginForm
from tokens.admin_sign_in import CodexSignInMixin
from tokens.discovery import fetch_models
from tokens.forms import SECRET_FIELDS, CredentialForm, ImportForm
from tokens.importing import ImportResult, import_credentials
from tokens.models import Credential, Kind, mask
from tokens.probe import probe
from tokens.refreshing import refresh_credential
from tokens.services import ANY_MODEL, cooldowns_of

# Secrets of any credential that an upstream might echo in an error: API keys and JWTs.
SECRET_PATTERN = re.compile(r"sk-[\w-]{12,}|eyJ[\w-]+\.[\w-]+\.[\w-]+")
MAX_ERROR_MESSAGES = 20

admin.site.login_form = ThrottledLoginForm  # password guessing is slowed down (tokens/throttle.py)


def redact(text: str, cred: Credential) -> str:
    for secret in (cred.api_key, cred.access_token, cred.refresh_token):
        if secret:
            text = text.replace(secret, mask(secret))
    return SECRET_PATTERN.sub(lambda m: mask(m.group()), text)


@admin.register(Credential)
class CredentialAdmin(CodexSignInMixin, admin.ModelAdmin):
    form = CredentialForm
    list_display = (
        *("id", "kind", "secret", "account_id", "base_url", "status", "short_error", "next_retry", "plan_quota"),
        *("request_count", "error_count", "last_used_at"),
    )
    list_display_links = ("id", "secret")
    list_filter = ("kind", "status", "wire_api")
    search_fields = ("label", "account_id", "base_url")
    actions = (
        *("refresh_selected", "test_selected", "fetch_models_selected"),
        *("disable_selected", "enable_selected", "clear_cooldown_selected"),
    )
    readonly_fields = (
        *("error", "upstream_models", "models_fetched_at"),
        *("request_count", "error_count", "last_used_at", "created_at", "updated_at"),
    )
    fieldsets = (
        (None, {"fields": ("kind", "label", *SECRET_FIELDS, "account_id", "base_url", "wire_api", "model_names")}),
        ("Models the upstream lists", {"fields": ("upstream_models", "models_fetched_at")}),
        ("Limits", {"fields": ("max_concurrency",)}),
        ("State", {"fields": ("status", "error", "cooldown_until", "model_cooldowns")}),
        ("Usage", {"fields": ("request_count", "error_count", "last_used_at", "created_at", "updated_at")}),
    )

    # -- columns and read-only values ------------------------------------------------------------
    @admin.display(description="secret")
    def secret(self, obj: Credential) -> str:
        return obj.secret_masked

    @admin.display(description="next retry")
    def next_retry(self, obj: Credential) -> str:
        """When a cooling credential is tried again: for all models, or per model when the cap was per model."""
        cooldowns = cooldowns_of(obj)
        now = timezone.now().timestamp()
        live = {model: until for model, until in cooldowns.items() if until > now}
        return ", ".join(
            f"{'all' if model == ANY_MODEL else model} in {int(until - now)} s" for model, until in sorted(live.items())
        )

    @admin.display(description="quota")
    def plan_quota(self, obj: Credential) -> SafeString:
        """What the upstream last reported of the plan's windows (read for the whole page at once, below)."""
        parts = quota.windows(getattr(obj, "reported_quota", {}), time.time())
        return format_html_join(" · ", '<span style="white-space: nowrap">{}</span>', ((part,) for part in parts))

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        changelist = super().get_changelist_instance(request)
        reported = quota.shown(changelist.result_list)  # one Redis round trip for the page
        for obj in changelist.result_list:
            obj.reported_quota = reported.get(obj.pk, {})
        return changelist

    @admin.display(description="last error")
    def short_error(self, obj: Credential) -> str:
        return Truncator(redact(obj.last_error, obj)).chars(60)

    @admin.display(description="last error")
    def error(self, obj: Credential) -> str:
        return redact(obj.last_error, obj)

    @admin.display(description="upstream models")
    def upstream_models(self, obj: Credential) -> str:
        return Truncator(", ".join(obj.discovered_models)).chars(2000)

    @admin.display(description="access token")
    def masked_access_token(self, obj: Credential) -> str:
        return mask(obj.access_token)

    @admin.display(description="refresh token")
    def masked_refresh_token(self, obj: Credential) -> str:
        return mask(obj.refresh_token)

    @admin.display(description="API key")
    def masked_api_key(self, obj: Credential) -> str:
        return mask(obj.api_key)

    def get_fieldsets(self, request: HttpRequest, obj: Credential | None = None) -> list[tuple[str | None, Any]]:
        """View-only users get every field read-only, which would print secrets: show them masked instead."""
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        swap = {name: f"masked_{name}" for name in SECRET_FIELDS}
        return [(title, {**opts, "fields": [swap.get(f, f) for f in opts["fields"]]}) for title, opts in fieldsets]

    # -- actions ---------------------------------------------------------------------------------
    @admin.action(description="Refresh now (RefreshToken → AccessToken)", permissions=["change"])
    def refresh_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        for cred in queryset:
            outcome = refresh_credential(cred.pk, force=True)
            level = messages.SUCCESS if outcome.result == "refreshed" else messages.WARNING
            self.message_user(request, f"{cred}: {outcome.result} {outcome.detail}".strip(), level)

    @admin.action(description="Test (a cheap call that costs no generation)", permissions=["view"])
    def test_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        for cred in queryset:
            works, detail = probe(cred)
            self.message_user(request, f"{cred}: {detail}", messages.SUCCESS if works else messages.ERROR)

    @admin.action(description="Fetch models (the upstream's GET /models)", permissions=["change"])
    def fetch_models_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        for cred in queryset.filter(kind=Kind.OPENAI):
            fetched = fetch_models(cred.pk)
            self.message_user(request, f"{cred}: {fetched.detail}", messages.SUCCESS if fetched.ok else messages.ERROR)

    @admin.action(description="Disable selected credentials", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        self.message_user(request, f"Disabled {operations.disable(queryset)} credential(s).", messages.SUCCESS)

    @admin.action(description="Enable selected credentials (clears cooldowns and last error)", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        self.message_user(request, f"Enabled {operations.enable(queryset)} credential(s).", messages.SUCCESS)

    @admin.action(description="Clear cooldown of selected credentials", permissions=["change"])
    def clear_cooldown_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        count = operations.clear_cooldown(queryset)
        self.message_user(request, f"Cleared the cooldown of {count} credential(s).", messages.SUCCESS)

    # -- extra pages: import and clear all ---------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        view, name = self.admin_site.admin_view, f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("import/", view(self.import_view), name=f"{name}_import"),
            *self.sign_in_urls(),
            path("clear-all/", view(self.clear_all_view), name=f"{name}_clear_all"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {"can_import": self._can_import(request), "can_clear_all": self.has_delete_permission(request)}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self._can_import(request):
            raise PermissionDenied
        form = ImportForm(request.POST, request.FILES) if request.method == "POST" else ImportForm()
        if form.is_valid():
            self._report(request, import_credentials(form.lines))
            return self._to_changelist()
        return self._page(request, "import.html", "Import credentials", form=form)

    def clear_all_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_delete_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            self.message_user(request, f"Deleted all {operations.clear_all()} credential(s).", messages.SUCCESS)
            return self._to_changelist()
        return self._page(request, "clear_all.html", "Delete all credentials", count=Credential.objects.count())

    def _can_import(self, request: HttpRequest) -> bool:
        # An import creates rows and may update an existing key's model list.
        return self.has_add_permission(request) and self.has_change_permission(request)

    def _report(self, request: HttpRequest, result: ImportResult) -> None:
        self.message_user(request, result.counts, messages.WARNING if result.errors else messages.SUCCESS)
        for line_no, reason in result.errors[:MAX_ERROR_MESSAGES]:
            self.message_user(request, f"line {line_no}: {reason}", messages.ERROR)
        if len(result.errors) > MAX_ERROR_MESSAGES:
            more = len(result.errors) - MAX_ERROR_MESSAGES
            self.message_user(request, f"… and {more} more bad line(s).", messages.ERROR)

    def _page(self, request: HttpRequest, template: str, title: str, **context: Any) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": title, **context}
        return TemplateResponse(request, f"admin/tokens/credential/{template}", context)

    def _to_changelist(self) -> HttpResponseRedirect:
        return redirect(reverse(f"{self.admin_site.name}:tokens_credential_changelist"))
