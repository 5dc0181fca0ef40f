"""The operator's token page: list, edit, import, disable/enable, clear cooldowns, clear all; "Refresh now" and
"Test" queue a task per credential (a worker calls the upstream; the list shows the outcome).

Secrets are never rendered whole: the list shows `secret_masked`, the change form uses a masked widget
(and masked read-only values for view-only users), `__str__` (used by history and delete pages) masks,
and last errors are redacted before display. Searching by secret is deliberately not offered: the term
would travel in the URL's query string (server logs, browser history) and be echoed in the search box.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from common.masking import mask, redact
from tokens import overview, quota, services, usage
from tokens.admin_login import ThrottledLoginForm
from tokens.admin_sign_in import CodexSignInMixin
from tokens.forms import SECRET_FIELDS, CredentialForm, ImportForm
from tokens.importing import ImportResult, import_credentials
from tokens.models import Credential, Kind

if TYPE_CHECKING:
    from celery import Task

MAX_ERROR_MESSAGES = 20
USAGE_DAYS = 30
OUTCOME_SHOWN = "the list shows each outcome (status, last error) once a worker has run it"
ERROR_TOOLTIP = 300  # characters of a last error in the list; the form shows it whole

admin.site.login_form = ThrottledLoginForm  # password guessing is slowed down (tokens/throttle.py)


def last_error(cred: Credential) -> str:
    return redact(cred.last_error, cred.api_key, cred.access_token, cred.refresh_token)


def clipped(text: str, title: str = "", css: str = "pool-clip") -> SafeString:
    """Cut to the column's width by the style sheet, whole in the tooltip."""
    return format_html('<span class="{}" title="{}">{}</span>', css, title or text, text)


def _unbroken(pieces: Sequence[str]) -> SafeString:
    """Pieces joined by commas, each kept on one line: a narrow column breaks between them only."""
    return format_html_join(", ", '<span class="pool-nowrap">{}</span>', ((piece,) for piece in pieces))


def _annotate(creds: Sequence[Credential]) -> None:
    """What the columns read beside the row, fetched for the whole page at once: the quota last reported (one
    Redis round trip) and the usage of today and of the last 30 days (one query each)."""
    ids, today = [cred.pk for cred in creds], usage.today()
    reported = quota.shown(creds)
    recent = usage.credential_totals(ids, today)
    month = usage.credential_totals(ids, today - timedelta(days=USAGE_DAYS - 1))
    for cred in creds:
        cred.reported_quota = reported.get(cred.pk, {})
        cred.usage_totals = (recent.get(cred.pk), month.get(cred.pk))


@admin.register(Credential)
class CredentialAdmin(CodexSignInMixin, admin.ModelAdmin):
    form = CredentialForm
    list_display = (
        *("id", "short_label", "secret", "short_kind", "upstream", "state", "expires", "last_used"),
        *("usage_today", "usage_30_days", "plan_quota", "short_error"),
    )
    list_display_links = ("id", "secret")
    empty_value_display = ""  # a dense list reads better with blanks than with dashes
    list_filter = ("kind", "status", "wire_api")
    search_fields = ("label", "account_id", "base_url")
    actions = (
        *("refresh_selected", "test_selected", "fetch_models_selected"),
        *("disable_selected", "enable_selected", "clear_cooldown_selected"),
    )
    readonly_fields = (
        *("error", "upstream_models", "models_fetched_at", "state", "expires", "model_cooldown_lines", "plan_quota"),
        *("usage_today", "usage_30_days", "last_used", "created_at", "updated_at"),
    )
    fieldsets = (
        (None, {"fields": ("kind", "label", *SECRET_FIELDS, "account_id", "base_url", "wire_api", "model_names")}),
        ("Models the upstream lists", {"fields": ("upstream_models", "models_fetched_at")}),
        ("Limits", {"fields": ("max_concurrency",)}),
        ("State", {"fields": ("status", "state", "expires", "error", "cooldown_until", "model_cooldown_lines")}),
        ("Plan quota", {"fields": ("plan_quota",)}),
        ("Usage", {"fields": ("usage_today", "usage_30_days", "last_used", "created_at", "updated_at")}),
    )

    # -- columns and read-only values (what they read is fetched for the whole page at once, in _annotate) -------
    @admin.display(description="label", ordering="label")
    def short_label(self, obj: Credential) -> SafeString:
        return clipped(obj.label)

    @admin.display(description="secret")
    def secret(self, obj: Credential) -> str:
        return obj.secret_masked

    @admin.display(description="kind", ordering="kind")
    def short_kind(self, obj: Credential) -> str:
        return obj.kind

    @admin.display(description="upstream")
    def upstream(self, obj: Credential) -> SafeString:
        """An API key's server (host and path), an account's workspace id; whole in the tooltip."""
        if obj.kind == Kind.OPENAI:
            parts = urlsplit(obj.base_url)
            return clipped(f"{parts.netloc}{parts.path.rstrip('/')}", obj.base_url)
        return clipped(obj.account_id)

    @admin.display(description="status now", ordering="status")
    def state(self, obj: Credential) -> SafeString:
        """What is true now: a `cooling` row whose cooldowns have ended is usable again."""
        now = overview.state_now(obj, time.time())
        shown = format_html('<span class="pool-state pool-{}">{}</span>', now.key, now.label)
        if not now.details:
            return shown
        return format_html('{}<span class="pool-detail"> · {}</span>', shown, _unbroken(now.details))

    @admin.display(description="token expires", ordering="access_token_expires_at")
    def expires(self, obj: Credential) -> str:
        """When the AccessToken runs out ("in 3 d", "expired 2 h ago"); API keys do not."""
        if obj.kind == Kind.OPENAI or obj.access_token_expires_at is None:
            return ""
        return overview.relative(obj.access_token_expires_at, time.time(), past="expired ")

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, obj: Credential) -> str:
        return overview.relative(obj.last_used_at, time.time())

    @admin.display(description="today")
    def usage_today(self, obj: Credential) -> SafeString:
        return self._usage_link(obj, obj.usage_totals[0])

    @admin.display(description="30 days")
    def usage_30_days(self, obj: Credential) -> SafeString:
        return self._usage_link(obj, obj.usage_totals[1])

    def _usage_link(self, obj: Credential, totals: usage.Totals | None) -> SafeString | str:
        if totals is None:
            return ""
        shown = format_html(
            '<span class="pool-nowrap">{} req ·</span> <span class="pool-nowrap">{} tok</span>',
            overview.amount(totals.requests),
            overview.amount(totals.tokens),
        )
        try:
            url = reverse(f"{self.admin_site.name}:tokens_dailyusage_changelist") + f"?credential_id={obj.pk}"
        except NoReverseMatch:  # the usage pages are not registered (tokens/admin_usage.py)
            return shown
        return format_html('<a href="{}">{}</a>', url, shown)

    @admin.display(description="quota")
    def plan_quota(self, obj: Credential) -> SafeString:
        """What the upstream last reported of the plan's windows."""
        parts = quota.windows(obj.reported_quota, time.time())
        return format_html_join(" · ", "{}", ((_unbroken(part.split(", ")),) for part in parts))

    @admin.display(description="last error")
    def short_error(self, obj: Credential) -> SafeString:
        error = last_error(obj)
        return clipped(Truncator(error).chars(80), Truncator(error).chars(ERROR_TOOLTIP), "pool-clip pool-error")

    @admin.display(description="last error")
    def error(self, obj: Credential) -> str:
        return last_error(obj)

    @admin.display(description="model cooldowns")
    def model_cooldown_lines(self, obj: Credential) -> SafeString:
        lines = overview.cooldown_lines(obj, time.time())
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    @admin.display(description="upstream models")
    def upstream_models(self, obj: Credential) -> str:
        names = sorted(obj.discovered_models)
        return Truncator(f"{len(names)}: {', '.join(names)}" if names else "").chars(2000)

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        changelist = super().get_changelist_instance(request)
        _annotate(changelist.result_list)
        return changelist

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Credential | None:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            _annotate([obj])
        return obj

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
        count = self._enqueue(queryset, "refresh_one", True)
        self.message_user(request, f"Queued a refresh of {count} credential(s); {OUTCOME_SHOWN}.", messages.SUCCESS)

    @admin.action(description="Test (a cheap call that costs no generation)", permissions=["view"])
    def test_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        count = self._enqueue(queryset, "probe_one")
        self.message_user(request, f"Queued a test of {count} credential(s); {OUTCOME_SHOWN}.", messages.SUCCESS)

    def _enqueue(self, queryset: QuerySet[Credential], task_name: str, *args: Any) -> int:
        """One task per selected credential (`tokens.tasks.<task_name>`): a worker makes the upstream calls, not the
        admin's request."""
        from tokens import tasks  # here: celery's task machinery (~0.5 MB) is no API worker's business

        task: Task = getattr(tasks, task_name)
        ids = list(queryset.values_list("pk", flat=True))
        for cred_id in ids:
            task.delay(cred_id, *args)
        return len(ids)

    @admin.action(description="Fetch models (the upstream's GET /models)", permissions=["change"])
    def fetch_models_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        count = self._enqueue(queryset.filter(kind=Kind.OPENAI), "fetch_models")
        message = f"Queued a model fetch for {count} OpenAI-compatible key(s); {OUTCOME_SHOWN}."
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description="Disable selected credentials", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        self.message_user(request, f"Disabled {services.disable(queryset)} credential(s).", messages.SUCCESS)

    @admin.action(description="Enable selected credentials (clears cooldowns and last error)", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        self.message_user(request, f"Enabled {services.enable(queryset)} credential(s).", messages.SUCCESS)

    @admin.action(description="Clear cooldown of selected credentials", permissions=["change"])
    def clear_cooldown_selected(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        count = services.clear_cooldown(queryset)
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
        requests, errors = usage.last_hour()
        context = {
            "can_import": self._can_import(request),
            "can_clear_all": self.has_delete_permission(request),
            "pool_summary": overview.summary(time.time()),
            "last_hour": {"requests": requests, "errors": errors},
            "is_nav_sidebar_enabled": False,  # the list needs the page's width (at 1280 px); breadcrumbs lead back
        }
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
            self.message_user(request, f"Deleted all {services.clear_all()} credential(s).", messages.SUCCESS)
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


from tokens import admin_keys, admin_usage  # noqa: E402, F401  (their ModelAdmins register on import)
