"""Codex accounts refresh at CODEX_AUTH_URL/oauth/token; their single-use refresh tokens rotate."""

from __future__ import annotations

import pytest

from tests.factories import codex_account
from tokens import refreshing
from tokens.models import Credential, Status

pytestmark = pytest.mark.django_db


def test_refresh_rotates_and_stores_the_new_refresh_token(oauth_settings, fake_oauth):
    cred = codex_account(plan="", refresh_token="rt_codex-first-0123456789abcdef")
    for _ in range(3):
        assert refreshing.refresh_credential(cred.pk, force=True).result == "refreshed"
    sent = [r["refresh_token"] for r in fake_oauth.requests]
    assert sent[0] == "rt_codex-first-0123456789abcdef" and len(set(sent)) == 3  # each token sent once
    assert fake_oauth.requests[0] == {
        "client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
        "grant_type": "refresh_token",
        "refresh_token": "rt_codex-first-0123456789abcdef",
        "scope": "openid profile email",
    }
    cred.refresh_from_db()
    assert cred.refresh_token.startswith("rt_") and cred.refresh_token not in sent
    assert (cred.status, cred.plan, cred.account_id) == (Status.ACTIVE, "plus", "acc-codex-1")


def test_a_token_imported_alone_learns_its_account(oauth_settings):
    cred = Credential.objects.create(kind="codex", refresh_token="rt_codex-alone-0123456789abcdef")
    assert refreshing.refresh_credential(cred.pk).result == "refreshed"
    cred.refresh_from_db()
    assert (cred.account_id, cred.plan, cred.user_id) == ("acc-codex-1", "plus", "user-fake")
    assert cred.access_token_expires_at is not None


@pytest.mark.parametrize(
    "refresh_token, code",
    [
        ("rt_expired-0123456789abcdefghij", "refresh_token_expired"),
        ("rt_invalidated-0123456789abcdef", "refresh_token_invalidated"),
    ],
)
def test_a_dead_refresh_token_marks_the_account_invalid(oauth_settings, refresh_token, code):
    cred = codex_account(refresh_token=refresh_token)
    assert refreshing.refresh_credential(cred.pk, force=True).result == "invalid"
    cred.refresh_from_db()
    assert cred.status == Status.INVALID and code in cred.last_error and refresh_token not in cred.last_error


def test_a_reused_refresh_token_marks_the_account_invalid(oauth_settings):
    first = codex_account(refresh_token="rt_codex-spent-0123456789abcdef")
    assert refreshing.refresh_credential(first.pk, force=True).result == "refreshed"
    twin = codex_account(user_id="user-twin", refresh_token="rt_codex-spent-0123456789abcdef")
    assert refreshing.refresh_credential(twin.pk, force=True).result == "invalid"
    twin.refresh_from_db()
    assert twin.status == Status.INVALID and "refresh_token_reused" in twin.last_error
