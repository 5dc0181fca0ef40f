"""The admin's "Refresh now", "Test" and "Fetch models" buttons queue a task per credential; once a worker has run
them, the list shows each outcome (status, last error)."""

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


def test_refresh_now_queues_refreshes_whose_outcomes_the_list_shows(admin_client, oauth_settings, fake_oauth, eager):
    good = chatgpt_account("", refresh_token="rt-ok-grace")
    bad = chatgpt_account("", refresh_token="rt-bad-heidi")
    page = act(admin_client, "refresh_selected", good, bad)
    assert "Queued a refresh of 2 credential(s)" in page
    assert sorted(fake_oauth.calls) == ["rt-bad-heidi", "rt-ok-grace"]
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == Status.ACTIVE and good.access_token.startswith("eyJ") and not good.last_error
    assert bad.status == Status.INVALID and "invalid_grant" in bad.last_error
    assert "invalid_grant" in page and "rt-ok-grace" not in page and "rt-bad-heidi" not in page


def test_test_queues_a_cheap_call_whose_failure_the_list_shows(admin_client, fake_openai, fake_chatgpt, eager):
    key = openai_key(fake_openai.url + "/v1", "sk-ok-probe-secret")
    dead = openai_key("http://127.0.0.1:9/v1", "sk-ok-nobody-home")
    account = chatgpt_account("eyJok.probe.secret", base_url=fake_chatgpt.url)
    refused = openai_key(fake_openai.url + "/v1", "sk-401-probe-secret")
    page = act(admin_client, "test_selected", key, dead, account, refused)
    assert "Queued a test of 4 credential(s)" in page
    assert not fake_openai.calls  # the probe asked for no generation
    for cred in (key, dead, account, refused):
        cred.refresh_from_db()
    assert (key.last_error, account.last_error) == ("", "")
    assert dead.last_error.startswith("test failed: unreachable") and refused.last_error == "test failed: HTTP 401"
    assert "test failed: unreachable" in page and "test failed: HTTP 401" in page
    assert not any(s in page for s in ("sk-ok-probe-secret", "sk-ok-nobody-home", "eyJok.probe.secret", "sk-401-probe"))


def test_fetch_models_queues_fetches_whose_outcomes_the_list_shows(admin_client, fake_openai, eager):
    key = openai_key(fake_openai.url + "/v1", "sk-ok-fetch-secret")
    refused = openai_key(fake_openai.url + "/v1", "sk-401-fetch-secret")
    account = chatgpt_account("eyJok.fetch.secret")  # not an `openai` key: skipped
    page = act(admin_client, "fetch_models_selected", key, refused, account)
    assert "Queued a model fetch for 2 OpenAI-compatible key(s)" in page
    assert "fetch models failed: GET /models answered HTTP 401" in page
    assert not any(secret in page for secret in ("sk-ok-fetch-secret", "sk-401-fetch-secret", "eyJok.fetch.secret"))
    assert dict(fake_openai.model_lists) == {"sk-ok-fetch-secret": 1, "sk-401-fetch-secret": 1}
    key.refresh_from_db()
    assert key.discovered_models["fake-model-mini"] == 1710000000 and not key.last_error
    change = admin_client.get(reverse("admin:tokens_credential_change", args=[key.pk])).content.decode()
    assert "fake-model-undated" in change


@pytest.mark.parametrize(
    ("action", "own", "other"),
    [
        ("test_selected", "test failed: unreachable (ConnectionError)", "refresh failed: invalid_grant"),
        ("fetch_models_selected", "fetch models failed: unreachable (ConnectionError)", "Upstream answered 500: boom"),
    ],
)
def test_an_action_that_works_clears_only_its_own_earlier_failure(admin_client, fake_openai, eager, action, own, other):
    was_down = openai_key(fake_openai.url + "/v1", "sk-ok-was-down")
    was_down.last_error = own
    failed_otherwise = openai_key(fake_openai.url + "/v1", "sk-ok-failed-otherwise")
    failed_otherwise.last_error = other
    for cred in (was_down, failed_otherwise):
        cred.save(update_fields=["last_error"])
    act(admin_client, action, was_down, failed_otherwise)
    was_down.refresh_from_db()
    failed_otherwise.refresh_from_db()
    assert was_down.last_error == "" and failed_otherwise.last_error == other
