"""Failing credentials are skipped, put in the right state, and the client never sees the failure."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import openai
import pytest
from django.utils import timezone

from tests import sdk
from tests.factories import openai_key
from tests.gateway import settle
from tokens.models import Credential, Status

pytestmark = pytest.mark.django_db(transaction=True)
MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(gateway) -> openai.OpenAI:
    return sdk.client(gateway.url)


def test_two_failing_of_three_twenty_requests_all_succeed(gateway, fake_openai):
    bad_auth = openai_key(fake_openai.url + "/v1", "sk-401-a")
    limited = openai_key(fake_openai.url + "/v1", "sk-429-b")
    good = openai_key(fake_openai.url + "/v1", "sk-ok-c")
    settle()
    for i in range(20):
        stream = i % 2 == 0
        reply = client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES, stream=stream)
        text = (
            "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
            if stream
            else (reply.choices[0].message.content)
        )
        assert text.startswith("Hello from the fake upstream")
    bad_auth.refresh_from_db()
    limited.refresh_from_db()
    good.refresh_from_db()
    assert bad_auth.status == Status.INVALID
    assert "Incorrect API key" in bad_auth.last_error
    assert limited.status == Status.COOLING and limited.cooldown_until is not None
    assert good.status == Status.ACTIVE
    # each failing key was tried once, then left alone
    assert fake_openai.calls["sk-401-a"] == 1
    assert fake_openai.calls["sk-429-b"] == 1
    assert fake_openai.calls["sk-ok-c"] == 20


@pytest.mark.parametrize("key", ["sk-500-x", "sk-403-x", "sk-empty-x", "sk-err-x"])
def test_transient_failures_move_on(gateway, fake_openai, key):
    flaky = openai_key(fake_openai.url + "/v1", key)
    openai_key(fake_openai.url + "/v1", "sk-ok-y")
    settle()
    for _ in range(4):
        reply = client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES)
        assert reply.choices[0].message.content.startswith("Hello")
    # a failure moves on; fewer than OUTLIER_CONSECUTIVE_FAILURES (5) of them never take the credential out
    assert Credential.objects.get(pk=flaky.pk).status == Status.ACTIVE


def test_a_sole_failing_credential_stays_in_then_half_open_probe(gateway, fake_openai):
    flaky = openai_key(fake_openai.url + "/v1", "sk-500-alone")
    settle()
    for _ in range(8):
        with pytest.raises(openai.APIStatusError):
            client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES)
    # without peers nothing says the failures are the credential's (and panic would use it anyway)
    assert fake_openai.calls["sk-500-alone"] == 8
    flaky.refresh_from_db()
    assert flaky.status == Status.ACTIVE

    # a cooldown that has ended leaves the credential half-open: one probe at a time until one succeeds
    probe = openai_key(fake_openai.url + "/v1", "sk-slow-probe")
    Credential.objects.filter(pk=probe.pk).update(
        status=Status.COOLING, cooldown_until=timezone.now() - timedelta(seconds=1), updated_at=timezone.now()
    )
    settle()
    with ThreadPoolExecutor(2) as pool:
        list(
            pool.map(lambda _: client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES), range(2))
        )
    assert fake_openai.peak["sk-slow-probe"] == 1
    probe.refresh_from_db()
    assert probe.status == Status.ACTIVE


def test_all_failing_gives_502_with_reason(gateway, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-500-only")
    settle()
    with pytest.raises(openai.APIStatusError) as err:
        client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES)
    assert err.value.status_code == 502
    assert "Internal upstream failure" in err.value.body["message"]
    assert fake_openai.calls["sk-500-only"] == 1  # never the same credential twice in one request


def test_all_cooling_gives_429_with_retry_after(gateway, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-429-only")
    settle()
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as err:
            client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES)
        assert int(err.value.response.headers["Retry-After"]) > 0
    assert fake_openai.calls["sk-429-only"] == 1


def test_retry_budget_is_bounded(gateway, fake_openai):
    for i in range(6):
        openai_key(fake_openai.url + "/v1", f"sk-500-{i}")
    settle()
    with pytest.raises(openai.APIStatusError):
        client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES)
    assert sum(fake_openai.calls.values()) == 4  # RETRY_TIMES=3 extra attempts


def test_deterministic_errors_are_not_retried(gateway, fake_openai):
    for i in range(3):
        openai_key(fake_openai.url + "/v1", f"sk-ok-{i}", models=["fake-model", "missing-upstream-model"])
    settle()
    # the fake answers any model, so provoke a 400 with a body the upstream rejects
    with pytest.raises(openai.BadRequestError):
        client(gateway).chat.completions.create(model="fake-model", messages=MESSAGES, extra_body={"n": 2})
    assert sum(fake_openai.calls.values()) == 0  # refused by the gateway itself


def test_drop_mid_stream_ends_with_error_event(gateway, fake_openai):
    import httpx

    openai_key(fake_openai.url + "/v1", "sk-drop-1")
    settle()
    body = {"model": "fake-model", "messages": MESSAGES, "stream": True}
    raw = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer test-code"})
    assert raw.status_code == 200
    events = [line for line in raw.text.split("\n\n") if line]
    assert events[0].startswith("data: {") and '"role":"assistant"' in events[0]
    assert '"error"' in events[-1] and "[DONE]" not in raw.text
