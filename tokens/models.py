"""Credentials of the pool: ChatGPT accounts and OpenAI-compatible API keys."""

from __future__ import annotations

import hashlib

from django.db import models
from django.utils import timezone

from common import jwt
from common.masking import mask
from tokens.crypto import EncryptedTextField


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
        """Credentials the pool may hand out (cooldowns are checked at pick time, not here). One being refreshed is
        one of them: its AccessToken serves until it expires, and a request that finds it stale waits for the
        refresh (`refreshing.refresh_inline`) instead of finding no credential at all."""
        return self.filter(status__in=[Status.ACTIVE, Status.COOLING, Status.NEEDS_REFRESH, Status.REFRESHING])


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
            self.access_token_expires_at = jwt.expiry(self.access_token)
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


class ClientKey(models.Model):
    """A key the gateway hands to one of its users, with that user's limits. Only a digest of the key is stored
    (`tokens.clients`); `prefix` is its first characters, enough to tell keys apart in lists."""

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    enabled = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never.")
    allowed_models = models.JSONField(
        default=list, blank=True, help_text='Model names or globs (e.g. "gpt-5*"); empty allows every model.'
    )
    rpm = models.PositiveIntegerField("requests per minute", default=0, help_text="0 = unlimited")
    tpm = models.PositiveIntegerField("tokens per minute", default=0, help_text="0 = unlimited")
    max_concurrency = models.PositiveIntegerField("concurrent requests", default=0, help_text="0 = unlimited")
    daily_tokens = models.PositiveBigIntegerField("tokens per day", default=0, help_text="0 = unlimited")
    monthly_tokens = models.PositiveBigIntegerField("tokens per month", default=0, help_text="0 = unlimited")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "client key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class Outcome(models.TextChoices):
    """How a request ended, as the request log records it."""

    COMPLETED = "completed", "Completed"
    CLIENT_CANCELLED = "client_cancelled", "Client cancelled"
    UPSTREAM_ERROR = "upstream_error", "Upstream error"
    RATE_LIMITED = "rate_limited", "Rate limited"
    OVER_BUDGET = "over_budget", "Over budget"
    REFUSED = "refused", "Refused (client error)"
    SERVER_ERROR = "server_error", "Server error"


class RequestLog(models.Model):
    """One API request, written in batches off the request path (`tokens.usage`) and kept `REQUEST_LOG_DAYS`.

    The key and the credential are plain ids without a database constraint: the log is history, so deleting a
    key or a credential neither deletes its rows nor fails a batch that names it."""

    created_at = models.DateTimeField(db_index=True, help_text="When the request arrived.")
    client_key = models.ForeignKey(
        ClientKey, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    endpoint = models.CharField(max_length=64)
    model = models.CharField(max_length=200, blank=True)
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, blank=True)
    status = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    first_byte_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Until the upstream's first output.")
    duration_ms = models.PositiveIntegerField()
    request_id = models.CharField(max_length=128, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["client_key", "created_at"], name="requestlog_key_time"),
            models.Index(fields=["credential", "created_at"], name="requestlog_credential_time"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.endpoint} {self.status}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class DailyUsage(models.Model):
    """Requests and tokens per day (in `TIME_ZONE`), client key, credential and model; upserted with each batch
    of the request log and kept after the log is pruned. `key_id` and `credential_id` are 0 for none (an
    `AUTHORIZATION` code holder, a caller's own token), so the unique constraint can catch every row."""

    day = models.DateField()
    key_id = models.PositiveBigIntegerField(default=0)
    credential_id = models.PositiveBigIntegerField(default=0)
    model = models.CharField(max_length=200)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "key_id", "credential_id", "model"], name="one_usage_row_per_day")
        ]
        indexes = [
            models.Index(fields=["key_id", "day"], name="dailyusage_key_day"),
            models.Index(fields=["credential_id", "day"], name="dailyusage_credential_day"),
        ]
        verbose_name_plural = "daily usage"

    def __str__(self) -> str:
        return f"{self.day} key {self.key_id} credential {self.credential_id} {self.model}"
