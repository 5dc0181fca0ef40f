"""The operator's client keys: list, add (the key is shown once, on the page that answers the form), edit limits.

Only a digest of a key is stored, so no page can show a key again; the one page that shows it is the response
to the add form's POST (not a redirect: the key is in no URL, message, cookie or log line), and like every admin
view it is `never_cache`.
The list and the change form show `prefix…`, never the digest.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from tokens.clients import describe_limits, issue_key, parse_globs, set_enabled
from tokens.models import ClientKey

LIMIT_FIELDS = ("rpm", "tpm", "max_concurrency", "daily_tokens", "monthly_tokens")


class ClientKeyForm(forms.ModelForm):
    allowed_models = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"size": 80}),
        help_text='Model names or globs (e.g. "gpt-5*"), separated by commas; empty allows every model.',
    )

    class Meta:
        model = ClientKey
        fields = ("name", "enabled", "expires_at", "allowed_models", *LIMIT_FIELDS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["allowed_models"] = ", ".join(self.instance.allowed_models)

    def clean_allowed_models(self) -> list[str]:
        return parse_globs(self.cleaned_data["allowed_models"])


@admin.register(ClientKey)
class ClientKeyAdmin(admin.ModelAdmin):
    form = ClientKeyForm
    list_display = ("name", "key", "enabled", "expires_at", "models", "limits", "created_at", "usage")
    list_filter = ("enabled",)
    search_fields = ("name", "prefix")
    actions = ("enable_selected", "disable_selected")
    fieldsets = (
        (None, {"fields": ("name", "enabled", "expires_at", "allowed_models")}),
        ("Limits (0 = unlimited)", {"fields": LIMIT_FIELDS}),
    )

    @admin.display(description="key")
    def key(self, obj: ClientKey) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="allowed models")
    def models(self, obj: ClientKey) -> str:
        return ", ".join(obj.allowed_models) or "all"

    @admin.display(description="limits")
    def limits(self, obj: ClientKey) -> str:
        return describe_limits(obj)

    @admin.display(description="usage")
    def usage(self, obj: ClientKey) -> str:
        try:
            url = reverse(f"{self.admin_site.name}:tokens_dailyusage_changelist") + f"?key_id={obj.pk}"
        except NoReverseMatch:  # the usage pages are not registered (tokens/admin_usage.py)
            return ""
        return format_html('<a href="{}">Usage</a>', url)

    def get_readonly_fields(self, request: HttpRequest, obj: ClientKey | None = None) -> tuple[str, ...]:
        return ("key", "created_at", "updated_at") if obj is not None else ()

    def get_fieldsets(self, request: HttpRequest, obj: ClientKey | None = None) -> list[tuple[str | None, Any]]:
        fieldsets = list(super().get_fieldsets(request, obj))
        return fieldsets if obj is None else [*fieldsets, ("Key", {"fields": ("key", "created_at", "updated_at")})]

    def save_model(self, request: HttpRequest, obj: ClientKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        obj.new_key = issue_key(obj)  # shown by `response_add`, then gone with the request

    def response_add(self, request: HttpRequest, obj: ClientKey, post_url_continue: str | None = None) -> HttpResponse:
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Client key created"}
        context |= {"obj": obj, "key": obj.new_key}
        return TemplateResponse(request, "admin/tokens/clientkey/created.html", context)

    @admin.action(description="Enable selected client keys", permissions=["change"])
    def enable_selected(self, request: HttpRequest, queryset: QuerySet[ClientKey]) -> None:
        self.message_user(request, f"Enabled {set_enabled(queryset, True)} client key(s).", messages.SUCCESS)

    @admin.action(description="Disable selected client keys", permissions=["change"])
    def disable_selected(self, request: HttpRequest, queryset: QuerySet[ClientKey]) -> None:
        self.message_user(request, f"Disabled {set_enabled(queryset, False)} client key(s).", messages.SUCCESS)
