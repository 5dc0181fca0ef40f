"""Client keys at the API of a real gateway process, through the `openai` SDK: who may call, which models, the
limits with OpenAI's errors and headers, and every request in the request log with its key, credential and tokens."""

from __future__ import annotations

import datetime as dt
import io
import json

import httpx
import openai
import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.factories import openai_key
from tests.gateway import Gateway, eventually, settle
from tests.sdk import client
from tokens.clients import create_key
from tokens.models import ClientKey, Outcome, RequestLog

pytestmark = pytest.mark.django_db(transaction=True)
HELLO = [{"role": "user", "content": "Say hello"}]
FAKE_USAGE = 7 + 10  # the fake upstream's usage for HELLO: 7 prompt tokens, a 10-word answer


@pytest.fixture
def upstream(fake_openai) -> None:
    openai_key(fake_openai.url + "/v1", "sk-ok-client-keys", ["fake-model", "other-model"])
    settle()


def sdk(gateway, key: str) -> openai.OpenAI:
    return client(gateway.url, key)


def logged(request_id: str) -> RequestLog:
    """The request log row of a request (written in batches: it may take a moment)."""
    assert eventually(lambda: RequestLog.objects.filter(request_id=request_id).exists()), request_id
    return RequestLog.objects.get(request_id=request_id)


def test_a_key_is_served_with_rate_limit_headers_and_logged(gateway, upstream):
    row, key = create_key("alice", rpm=100, tpm=100_000)
    raw = sdk(gateway, key).chat.completions.with_raw_response.create(model="fake-model", messages=HELLO)
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert raw.headers["x-ratelimit-limit-requests"] == "100"
    assert raw.headers["x-ratelimit-remaining-requests"] == "99"
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert raw.headers["x-ratelimit-reset-requests"] and raw.headers["x-ratelimit-reset-tokens"]
    entry = logged(raw.headers["x-request-id"])
    assert entry.client_key_id == row.id and entry.model == "fake-model" and entry.kind == "openai"
    assert entry.endpoint == "/v1/chat/completions" and entry.status == 200 and entry.outcome == Outcome.COMPLETED
    assert entry.credential_id is not None and entry.total_tokens == FAKE_USAGE == reply.usage.total_tokens
    assert entry.first_byte_ms is not None and entry.duration_ms >= entry.first_byte_ms


def test_unknown_disabled_and_expired_keys_are_refused(gateway, upstream):
    _, key = create_key("bob")
    ClientKey.objects.filter(name="bob").update(enabled=False)
    _, later = create_key("carol", expires_at=timezone.now() - dt.timedelta(minutes=1))
    for wrong in ("sk-c2a-" + "x" * 43, key, later):
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk(gateway, wrong).chat.completions.create(model="fake-model", messages=HELLO)
        assert caught.value.code == "invalid_api_key"
        assert wrong not in str(caught.value.body)


def test_a_key_sees_and_uses_only_its_models(gateway, upstream):
    _, key = create_key("dave", allowed_models=["fake-*"])
    client = sdk(gateway, key)
    assert "other-model" not in [m.id for m in client.models.list()]
    assert "fake-model" in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="other-model", messages=HELLO)
    assert caught.value.code == "model_not_found"
    assert "does not exist or you do not have access to it" in caught.value.message


def test_over_the_requests_per_minute_is_a_429_with_retry_after(gateway, upstream):
    _, key = create_key("erin", rpm=2)
    client = sdk(gateway, key)
    for _ in range(2):
        client.chat.completions.create(model="fake-model", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="fake-model", messages=HELLO)
    assert caught.value.code == "rate_limit_exceeded"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60
    assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    entry = logged(caught.value.response.headers["x-request-id"])
    assert entry.outcome == Outcome.RATE_LIMITED and entry.status == 429 and entry.credential_id is None


def test_a_spent_budget_is_insufficient_quota(gateway, upstream):
    _, key = create_key("frank", daily_tokens=FAKE_USAGE)
    client = sdk(gateway, key)
    client.chat.completions.create(model="fake-model", messages=HELLO, max_tokens=20)
    assert eventually(lambda: _refused_for_quota(client))


def _refused_for_quota(client: openai.OpenAI) -> bool:
    """True once the key's budget is spent (the first answer settles its reservation as it ends)."""
    try:
        client.chat.completions.create(model="fake-model", messages=HELLO, max_tokens=20)
    except openai.RateLimitError as exc:
        assert exc.code == "insufficient_quota" and exc.type == "insufficient_quota"
        return True
    return False


def test_a_stream_the_client_leaves_is_logged_as_cancelled(gateway, fake_openai):
    openai_key(fake_openai.url + "/v1", "sk-long-client-keys", ["long-model"])
    settle()
    row, key = create_key("gina")
    body = {"model": "long-model", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, headers=headers, timeout=30) as r:
        request_id = r.headers["x-request-id"]
        next(r.iter_lines())
    entry = logged(request_id)
    assert entry.outcome == Outcome.CLIENT_CANCELLED and entry.client_key_id == row.id


def test_the_responses_api_is_logged_with_its_endpoint(gateway, upstream):
    row, key = create_key("hank")
    raw = sdk(gateway, key).responses.with_raw_response.create(model="fake-model", input="Say hello")
    entry = logged(raw.headers["x-request-id"])
    assert entry.endpoint == "/v1/responses" and entry.client_key_id == row.id
    assert entry.outcome == Outcome.COMPLETED and entry.total_tokens == raw.parse().usage.total_tokens


def test_the_usage_command_counts_the_requests_made(gateway, upstream):
    row, key = create_key("ivy")
    client = sdk(gateway, key)
    made = [client.chat.completions.create(model="fake-model", messages=HELLO) for _ in range(3)]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert eventually(lambda: RequestLog.objects.filter(client_key_id=row.id).count() == 4)
    out = io.StringIO()
    call_command("usage", "--key", "ivy", "--json", stdout=out)
    by_model = {r["model"]: r for r in json.loads(out.getvalue())}
    assert by_model["fake-model"]["requests"] == 3 and by_model["fake-model"]["errors"] == 0
    assert by_model["fake-model"]["total_tokens"] == sum(m.usage.total_tokens for m in made)
    assert by_model["no-such-model"]["requests"] == by_model["no-such-model"]["errors"] == 1
    assert {r["key"] for r in by_model.values()} == {"ivy"}


def test_a_server_stopping_writes_the_requests_it_still_holds(gateway_env, fake_openai):
    """The watcher writes the log every POOL_RELOAD_SECONDS: here only at exit could it be written."""
    openai_key(fake_openai.url + "/v1", "sk-ok-exit-flush", ["fake-model"])
    _, key = create_key("jay")
    server = Gateway({**gateway_env, "POOL_RELOAD_SECONDS": "600"}).start()
    try:
        raw = sdk(server, key).chat.completions.with_raw_response.create(model="fake-model", messages=HELLO)
        assert not RequestLog.objects.filter(request_id=raw.headers["x-request-id"]).exists()
    finally:
        server.stop()
    assert logged(raw.headers["x-request-id"]).outcome == Outcome.COMPLETED
