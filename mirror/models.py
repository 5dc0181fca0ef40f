"""Seed tokens an operator hands out, and the conversations of the web chat page."""

from __future__ import annotations

import hashlib
import uuid

from django.db import models
from django.utils import timezone

from common.masking import mask


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SeedTokenQuerySet(models.QuerySet):
    def active(self) -> SeedTokenQuerySet:
        return self.filter(revoked=False)

    def matching(self, token: str) -> SeedTokenQuerySet:
        return self.filter(fingerprint=fingerprint(token))


class SeedToken(models.Model):
    """A string that logs its holder in to chat through the pool; only its SHA-256 is kept."""

    fingerprint = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False, help_text="Enough of the token to recognise it.")
    label = models.CharField(max_length=100, blank=True, help_text="Who it was handed to.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked = models.BooleanField(default=False, db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = SeedTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.label or 'seed token'} ({self.hint})"

    def set_token(self, token: str) -> None:
        self.fingerprint = fingerprint(token)
        self.hint = mask(token)

    @property
    def affinity(self) -> str:
        return f"seed:{self.pk}"


class ConversationQuerySet(models.QuerySet):
    def owned_by(self, owner: str) -> ConversationQuerySet:
        return self.filter(owner=owner)


class Conversation(models.Model):
    """One chat of the page; `owner` is the logged-in identity's key, `messages` the OpenAI-style history
    (`role`, `content`, and for answers `reasoning` and `stopped`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.CharField(max_length=80)
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=100, blank=True)
    messages = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"])]

    def __str__(self) -> str:
        return self.title or "New chat"
