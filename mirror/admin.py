"""Seed tokens in the admin: create (the token is shown once), list, revoke. Only fingerprints are kept."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from mirror.forms import SeedTokenCreationForm
from mirror.models import SeedToken


@admin.register(SeedToken)
class SeedTokenAdmin(admin.ModelAdmin):
    list_display = ("label", "hint", "created_at", "last_used_at", "revoked")
    list_filter = ("revoked",)
    search_fields = ("label",)
    readonly_fields = ("hint", "created_at", "last_used_at")
    actions = ("revoke_selected", "restore_selected")

    def get_form(self, request: HttpRequest, obj: SeedToken | None = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = SeedTokenCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: SeedToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("label", "token")
        return ("label", "hint", "revoked", "created_at", "last_used_at")

    def response_add(self, request: HttpRequest, obj: SeedToken, post_url_continue: str | None = None) -> HttpResponse:
        """Show the new token once, with its login link; it cannot be read back later."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Seed token created",
            "seed": obj,
            "token": obj.plain_token,  # set by SeedTokenCreationForm.save, never stored
            "login_url": request.build_absolute_uri(reverse("landing")),
            "changelist": reverse("admin:mirror_seedtoken_changelist"),
        }
        return TemplateResponse(request, "admin/mirror/seedtoken/created.html", context)

    @admin.action(description="Revoke selected seed tokens", permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[SeedToken]) -> None:
        count = queryset.update(revoked=True)
        self.message_user(request, f"Revoked {count} seed token(s); their sessions end on their next request.")

    @admin.action(description="Restore selected seed tokens", permissions=["change"])
    def restore_selected(self, request: HttpRequest, queryset: QuerySet[SeedToken]) -> None:
        count = queryset.update(revoked=False)
        self.message_user(request, f"Restored {count} seed token(s).", messages.SUCCESS)
