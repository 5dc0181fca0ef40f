"""Secrets are encrypted at rest, and the key can be rotated."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from tests.factories import chatgpt_account, openai_key
from tokens import crypto
from tokens.models import Credential

pytestmark = pytest.mark.django_db

SECRETS = ("eyJhbGciOiJSUzI1NiJ9.secret-access", "refresh-secret-123456", "sk-proj-secret-api-key-987654")


def raw_rows() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token, api_key FROM tokens_credential")
        return cursor.fetchall()


def test_database_never_holds_secrets_in_clear():
    chatgpt_account(SECRETS[0], refresh_token=SECRETS[1])
    openai_key("https://api.example.com/v1", SECRETS[2])
    dump = repr(raw_rows())
    for secret in SECRETS:
        assert secret not in dump
    cred = Credential.objects.get(kind="chatgpt")
    assert (cred.access_token, cred.refresh_token) == SECRETS[:2]


def test_rotation_reencrypts_with_the_new_key(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIAL_KEYS = [old]
    crypto._fernet.cache_clear()
    try:
        cred = openai_key("https://api.example.com/v1", SECRETS[2])
        settings.CREDENTIAL_KEYS = [new, old]
        crypto._fernet.cache_clear()
        call_command("rotate_credential_keys")
        settings.CREDENTIAL_KEYS = [new]
        crypto._fernet.cache_clear()
        assert Credential.objects.get(pk=cred.pk).api_key == SECRETS[2]
        assert Fernet(new.encode()).decrypt(raw_rows()[0][2].encode()).decode() == SECRETS[2]
    finally:
        crypto._fernet.cache_clear()
