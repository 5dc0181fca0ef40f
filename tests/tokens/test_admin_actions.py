"""The admin's "Refresh now" and "Test" buttons report their outcome on the page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import chatgpt_account, openai_key
from tokens.models import Status

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:tokens_credential_changelist")


def act(client, action: str, *creds) -> str:
    data = {"action": action, "_selected_action": [c.pk for c in creds]}
    return client.post(CHANGELIST, data, follow=True).content.decode()


def test_refresh_now_reports_each_outcome(admin_client, oauth_settings):
    good = chatgpt_account("", refresh_token="rt-ok-grace")
    bad = chatgpt_account("", refresh_token="rt-bad-heidi")
    page = act(admin_client, "refresh_selected", good, bad)
    assert "refreshed" in page and "invalid" in page and "invalid_grant" in page
    assert "rt-ok-grace" not in page and "rt-bad-heidi" not in page
    good.refresh_from_db()
    assert good.status == Status.ACTIVE and good.access_token.startswith("eyJ")


def test_test_action_makes_a_cheap_call(admin_client, fake_openai, fake_chatgpt):
    key = openai_key(fake_openai.url + "/v1", "sk-ok-probe-secret")
    dead = openai_key("http://127.0.0.1:9/v1", "sk-ok-nobody-home")
    account = chatgpt_account("eyJok.probe.secret", base_url=fake_chatgpt.url)
    page = act(admin_client, "test_selected", key, dead, account)
    assert page.count(": ok") == 2 and "unreachable" in page
    assert not fake_openai.calls  # the probe asked for no generation
    assert "sk-ok-probe-secret" not in page and "eyJok.probe.secret" not in page


def test_fetch_models_action_stores_what_each_upstream_lists(admin_client, fake_openai):
    key = openai_key(fake_openai.url + "/v1", "sk-ok-fetch-secret")
    refused = openai_key(fake_openai.url + "/v1", "sk-401-fetch-secret")
    account = chatgpt_account("eyJok.fetch.secret")  # not an `openai` key: skipped
    page = act(admin_client, "fetch_models_selected", key, refused, account)
    assert ": 3 model(s)" in page and "GET /models answered HTTP 401" in page
    assert not any(secret in page for secret in ("sk-ok-fetch-secret", "sk-401-fetch-secret", "eyJok.fetch.secret"))
    assert dict(fake_openai.model_lists) == {"sk-ok-fetch-secret": 1, "sk-401-fetch-secret": 1}
    key.refresh_from_db()
    assert key.discovered_models["fake-model-mini"] == 1710000000
    change = admin_client.get(reverse("admin:tokens_credential_change", args=[key.pk])).content.decode()
    assert "fake-model-undated" in change
