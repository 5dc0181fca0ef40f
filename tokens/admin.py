from __future__ import annotations

from django.contrib import admin

from tokens.models import Credential


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "secret_masked", "account_id", "status", "last_error", "request_count")
    list_filter = ("kind", "status")
