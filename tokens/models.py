"""Credentials of the pool: ChatGPT accounts and OpenAI-compatible API keys."""

from __future__ import annotations

import hashlib

from django.db import models
from django.utils import timezone

from common.masking import mask
from tokens.crypto import EncryptedTextField
from tokens.refresh import jwt_expiry


class Kind(models.TextChoices):
    CHATGPT = "chatgpt", "ChatGPT account"
    OPENAI = "openai", "OpenAI-compatible API key"
    CODEX = "codex", "ChatGPT account (Codex sign-in)"


class WireApi(models.TextChoices):
    CHAT = "chat", "Chat Completions only"
    RESPONSES = "responses", "Chat Completions and Responses"


class Status(models.TextChoices):
    ACTIVE = "active", "Active"
    COOLING = "cooling", "Cooling down"
    NEEDS_REFRESH = "needs_refresh", "Needs refresh"
    REFRESHING = "refreshing", "Refreshing"
    INVALID = "invalid", "Invalid"
    DISABLED = "disabled", "Disabled"


class CredentialQuerySet(models.QuerySet):
    def usable(self) -> CredentialQuerySet:
        """Credentials the pool may hand out (cooldowns are checked at pick time, not here)."""
        return self.filter(status__in=[Status.ACTIVE, Status.COOLING, Status.NEEDS_REFRESH])


class Credential(models.Model):
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHATGPT)
    label = models.CharField(max_length=100, blank=True)
    access_token = EncryptedTextField(blank=True)
    refresh_token = EncryptedTextField(blank=True)
    account_id = models.CharField("ChatGPT-Account-ID", max_length=100, blank=True)
    plan = models.CharField(max_length=64, blank=True, help_text="ChatGPT plan from the id token (codex).")
    user_id = models.CharField(max_length=100, blank=True, help_text="ChatGPT user id from the id token (codex).")
    base_url = models.URLField(blank=True, help_text="Upstream origin; empty uses CHATGPT_BASE_URL.")
    api_key = EncryptedTextField(blank=True)
    wire_api = models.CharField(
        "API",
        max_length=16,
        choices=WireApi.choices,
        default=WireApi.CHAT,
        help_text="What an OpenAI-compatible server speaks: with Responses, /v1/responses requests are passed to its "
        "own /responses; otherwise they are translated to Chat Completions.",
    )
    model_names = models.JSONField(
        default=list, blank=True, help_text="Model names served; empty means what the upstream lists (or any)."
    )
    discovered_models = models.JSONField(
        default=dict, blank=True, editable=False, help_text="The upstream's GET /models: name → created (0 unknown)."
    )
    models_fetched_at = models.DateTimeField(null=True, blank=True, editable=False)
    max_concurrency = models.PositiveIntegerField(default=0, help_text="0 = unlimited")
    fingerprint = models.CharField(max_length=64, unique=True, editable=False)
    access_token_expires_at = models.DateTimeField(null=True, blank=True, help_text="From the JWT's exp claim.")
    refresh_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    last_error = models.TextField(blank=True)
    cooldown_until = models.DateTimeField(null=True, blank=True)
    model_cooldowns = models.JSONField(default=dict, blank=True, help_text="model → ISO time it clears")
    quota = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="The plan quota last reported (tokens.quota), without Redis.",
    )

    request_count = models.PositiveBigIntegerField(default=0)
    error_count = models.PositiveBigIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    objects = CredentialQuerySet.as_manager()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        if self.kind == Kind.OPENAI:
            return f"openai {self.base_url} {mask(self.api_key)}"
        secret = mask(self.access_token or self.refresh_token)
        return f"{self.kind} {secret}" + (f" ({self.account_id})" if self.account_id else "")

    def save(self, *args, **kwargs) -> None:
        self.fingerprint = self.compute_fingerprint()
        if self.access_token and self.access_token_expires_at is None:
            self.access_token_expires_at = jwt_expiry(self.access_token)
        super().save(*args, **kwargs)

    @property
    def secret_masked(self) -> str:
        return mask(self.api_key or self.access_token or self.refresh_token)

    @property
    def served_models(self) -> list[str]:
        """The operator's list when given, else the upstream's own; empty means any name."""
        return list(self.model_names or self.discovered_models)

    def compute_fingerprint(self) -> str:
        """Identity for de-duplication: the same secret (and workspace) imported twice is one row."""
        secret = self.api_key if self.kind == Kind.OPENAI else (self.refresh_token or self.access_token)
        if self.kind == Kind.CODEX and self.user_id:
            secret = self.user_id  # single-use RTs rotate: a signed-in account is its user in its workspace
        scope = self.base_url if self.kind == Kind.OPENAI else self.account_id
        return hashlib.sha256(f"{self.kind}\0{scope}\0{secret}".encode()).hexdigest()


class Usage(models.Model):
    """Running totals per credential and model, written in batches off the request path."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="usage")
    model = models.CharField(max_length=200)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["credential", "model"], name="one_usage_row_per_model")]
        verbose_name_plural = "usage"

    def __str__(self) -> str:
        return f"{self.credential_id} {self.model}"
