"""RefreshToken → AccessToken against a local fake of the OAuth token endpoint."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from common.jwt import expiry as jwt_expiry
from tests.factories import chatgpt_account
from tokens import refreshing
from tokens.models import Credential, Status

pytestmark = pytest.mark.django_db


def test_refresh_stores_new_token_and_expiry(oauth_settings, fake_oauth):
    cred = chatgpt_account("", refresh_token="rt-ok-alice")
    outcome = refreshing.refresh_credential(cred.pk)
    assert outcome.result == "refreshed"
    cred.refresh_from_db()
    assert cred.access_token.startswith("eyJ") and cred.status == Status.ACTIVE
    assert cred.access_token_expires_at == jwt_expiry(cred.access_token)
    assert cred.access_token_expires_at > timezone.now() + timedelta(minutes=50)
    assert fake_oauth.requests[0]["client_id"] == "pdlLIX2Y72MIl2rhLhTE9VV9bN905kBh"


def test_newer_rt_form_uses_its_client_id(oauth_settings, fake_oauth):
    cred = chatgpt_account("", refresh_token="rt_newer-form-token")
    assert refreshing.refresh_credential(cred.pk).result == "refreshed"
    assert fake_oauth.requests[0]["client_id"] == "app_LlGpXReQgckcGGUo2JrYvtJK"


def test_invalid_grant_marks_invalid_with_reason(oauth_settings):
    cred = chatgpt_account("", refresh_token="rt-bad-bob")
    assert refreshing.refresh_credential(cred.pk).result == "invalid"
    cred.refresh_from_db()
    assert cred.status == Status.INVALID
    assert "invalid_grant" in cred.last_error and "rt-bad-bob" not in cred.last_error


def test_transient_failure_keeps_a_still_valid_token(oauth_settings):
    cred = chatgpt_account("eyJold.token.sig", refresh_token="rt-down-carol")
    Credential.objects.filter(pk=cred.pk).update(access_token_expires_at=timezone.now() + timedelta(hours=1))
    assert refreshing.refresh_credential(cred.pk, force=True).result == "failed"
    cred.refresh_from_db()
    assert cred.status == Status.ACTIVE and "503" in cred.last_error


def test_not_due_is_skipped_unless_forced(oauth_settings, fake_oauth):
    oauth_settings.REFRESH_AHEAD_SECONDS = 600  # the fake's tokens live an hour
    cred = chatgpt_account("", refresh_token="rt-ok-dave")
    refreshing.refresh_credential(cred.pk)
    assert refreshing.refresh_credential(cred.pk).result == "skipped"
    assert refreshing.refresh_credential(cred.pk, force=True).result == "refreshed"
    assert sum(fake_oauth.calls.values()) == 2


def test_allow_reset_decides_whether_invalid_can_be_revived(oauth_settings, fake_oauth):
    cred = chatgpt_account("", refresh_token="rt-ok-erin")
    Credential.objects.filter(pk=cred.pk).update(status=Status.INVALID)
    oauth_settings.ALLOW_RESET = False
    assert refreshing.refresh_credential(cred.pk, force=True).result == "skipped"
    oauth_settings.ALLOW_RESET = True
    assert refreshing.refresh_credential(cred.pk, force=True).result == "refreshed"


@pytest.mark.parametrize(
    ("refresh_token", "reason"),
    [("rt-expired-fay", "refresh_token_expired: Your refresh token has expired."), ("rt-gone-gus", "404")],
)
def test_nested_error_and_404_mark_invalid_with_the_reason(oauth_settings, fake_oauth, refresh_token, reason):
    cred = chatgpt_account("", refresh_token=refresh_token)
    assert refreshing.refresh_credential(cred.pk).result == "invalid"
    cred.refresh_from_db()
    assert cred.status == Status.INVALID and reason in cred.last_error and refresh_token not in cred.last_error
    assert refreshing.refresh_credential(cred.pk).result == "skipped"  # no retrying a dead token forever
    assert fake_oauth.calls[refresh_token] == 1


@pytest.mark.skipif("OAUTH_TOKEN_URL" in os.environ, reason="the environment overrides the default")
def test_default_token_endpoint_is_auth_openai_com():
    assert django_settings.OAUTH_TOKEN_URL == "https://auth.openai.com/oauth/token"
