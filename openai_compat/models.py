"""Stored responses of the Responses API (`openai_compat/responses/store.py` reads and writes them)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from tokens.crypto import EncryptedTextField


class StoredResponseQuerySet(models.QuerySet):
    def live(self) -> StoredResponseQuerySet:
        return self.filter(expires_at__gt=timezone.now())

    def expired(self) -> StoredResponseQuerySet:
        return self.filter(expires_at__lte=timezone.now())


class StoredResponse(models.Model):
    """One response with the whole conversation that led to it, so a follow-up is one read by primary key.

    `scope` is a digest of the caller's key (`openai_compat.auth.scope_of`), never the key; `content` is the
    JSON document `{"input": [...], "response": {...}}`, encrypted with the credentials' keys.
    """

    id = models.CharField(primary_key=True, max_length=64)
    scope = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    content = EncryptedTextField()

    objects = StoredResponseQuerySet.as_manager()

    def __str__(self) -> str:
        return self.id
