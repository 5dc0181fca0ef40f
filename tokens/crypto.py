"""Secrets at rest: Fernet encryption with a list of keys, the first of which encrypts.

Keys come from `CREDENTIAL_KEYS` (comma-separated Fernet keys). Without it, one key is derived from
SECRET_KEY, which is enough for a single embedded install. To rotate: put the new key first, keep the
old one after it, run `manage.py rotate_credential_keys`, then drop the old key.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.functions import Cast


@cache
def _fernet() -> MultiFernet:
    keys = settings.CREDENTIAL_KEYS or [
        base64.urlsafe_b64encode(hashlib.sha256(f"chat2api-credentials:{settings.SECRET_KEY}".encode()).digest())
    ]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise ImproperlyConfigured("CREDENTIAL_KEYS must be Fernet keys (urlsafe base64 of 32 bytes)") from None


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured("A stored credential cannot be decrypted with CREDENTIAL_KEYS") from None


def rotate(token: str) -> str:
    """Re-encrypt with the first key, whichever key encrypted it."""
    return _fernet().rotate(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """A text column holding Fernet ciphertext; Python code sees the plain text. Not searchable."""

    def from_db_value(self, value: str | None, expression, connection) -> str | None:
        return decrypt(value) if value else value

    def get_prep_value(self, value: str | None) -> str | None:
        value = super().get_prep_value(value)
        return encrypt(value) if value else value


def undecryptable(model: type[models.Model], limit: int | None = None) -> int:
    """How many rows of `model` hold a secret the current keys cannot decrypt, newest first up to `limit`.

    The ciphertext is read raw and never written back: a node with the wrong keys must not destroy what
    the right keys can still read.
    """
    names = [field.name for field in model._meta.fields if isinstance(field, EncryptedTextField)]
    rows = model.objects.order_by("-pk").values_list(*(Cast(name, models.TextField()) for name in names))
    return sum(any(value and not _decrypts(value) for value in row) for row in rows[:limit].iterator())


def _decrypts(token: str) -> bool:
    try:
        _fernet().decrypt(token.encode())
    except InvalidToken:
        return False
    return True


KEYS_MISMATCH = (
    "{count} stored credentials cannot be decrypted with CREDENTIAL_KEYS (without it, the key derived from "
    "SECRET_KEY): set the keys they were stored with; they are left unchanged"
)
