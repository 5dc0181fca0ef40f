"""The real `openai` SDK against the real gateway, over the fake ChatGPT web backend."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import httpx
import openai
import pytest

from tests import sdk
from tests.factories import chatgpt_account
from tests.fakes import chatgpt_server as fake
from tests.gateway import Gateway, settle
from tests.spec import assert_valid, assert_valid_sse, sse_errors
from tokens.models import Credential, Status

pytestmark = pytest.mark.django_db(transaction=True)
HELLO = [{"role": "user", "content": "Say hello"}]
HTTP = httpx.Client(timeout=30)  # one client: building a TLS context per request costs 100 ms


def client(gateway: Gateway, key: str = "test-code") -> openai.OpenAI:
    return sdk.client(gateway.url, key)


def ask(gateway: Gateway, prompt: str = "Say hello", model: str = "gpt-4o", key: str = "test-code", **kw) -> str:
    reply = client(gateway, key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], **kw
    )
    return reply.choices[0].message.content


def raw(gateway: Gateway, body: dict, key: str = "test-code") -> httpx.Response:
    return HTTP.post(gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})


def conversations(server: fake.FakeChatGPT) -> list[dict]:
    return [r for r in server.requests if r["kind"] == "conversation"]


def accounts(*tokens: str, **kw) -> list[Credential]:
    creds = [chatgpt_account(token, **kw) for token in tokens]
    settle()
    return creds


# --- Answers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("framing", ["v1", "legacy"])
def test_answer_in_either_framing_matches_spec(gateway, fake_chatgpt, framing):
    fake_chatgpt.force_legacy = framing == "legacy"
    accounts("at-ok-1")
    whole = raw(gateway, {"model": "gpt-4o", "messages": HELLO})
    assert whole.status_code == 200, whole.text
    assert_valid("CreateChatCompletionResponse", whole.json())
    assert whole.json()["choices"][0]["message"]["content"] == fake.ANSWER
    streamed = raw(gateway, {"model": "gpt-4o", "messages": HELLO, "stream": True})
    assert_valid_sse(streamed.text)
    chunks = list(client(gateway).chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == fake.ANSWER
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert {r["encoding"] for r in conversations(fake_chatgpt)} == {framing}


def test_real_capture_replayed_through_the_gateway(gateway, fake_chatgpt):
    accounts("at-ok-capture")
    assert ask(gateway, "replay the capture") == "Hi. What do you need help with?"


@pytest.mark.parametrize(("model", "slug"), [("gpt-4o", "gpt-4o"), ("gpt-3.5-turbo", "text-davinci-002-render-sha")])
def test_model_name_echoed_and_slug_sent(gateway, fake_chatgpt, model, slug):
    accounts("at-ok-slug")
    reply = client(gateway).chat.completions.create(model=model, messages=HELLO)
    assert reply.model == model
    assert conversations(fake_chatgpt)[-1]["body"]["model"] == slug


def test_request_shape_and_headers(gateway, fake_chatgpt):
    accounts("at-ok-shape")
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Say hello"},
    ]
    client(gateway).chat.completions.create(model="gpt-4o", messages=history)
    client(gateway).chat.completions.create(model="gpt-4o", messages=HELLO)
    first, second = conversations(fake_chatgpt)
    body, headers = first["body"], first["headers"]
    assert [m["author"]["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert [m["content"]["parts"] for m in body["messages"]] == [["Be brief."], ["Hi"], ["Hello."], ["Say hello"]]
    assert body["action"] == "next" and body["conversation_mode"] == {"kind": "primary_assistant"}
    assert body["history_and_training_disabled"] is True and body["force_use_sse"] is True
    assert body["supported_encodings"] == ["v1"] and "timezone_offset_min" in body
    assert uuid.UUID(body["parent_message_id"]) != uuid.UUID(second["body"]["parent_message_id"])
    assert headers["authorization"] == "Bearer at-ok-shape"
    assert headers["accept"] == "text/event-stream" and headers["content-type"] == "application/json"
    assert headers["oai-language"] == "en-US" and headers["user-agent"].startswith("chat2api/")
    assert headers["openai-sentinel-chat-requirements-token"] == fake.SENTINEL_TOKEN
    assert uuid.UUID(headers["oai-device-id"]) and headers["oai-device-id"] == second["headers"]["oai-device-id"]
    assert not any(h.startswith("sec-ch-ua") or h == "authkey" for h in headers)
    assert "chatgpt-account-id" not in headers
    sentinel = [r for r in fake_chatgpt.requests if r["kind"] == "sentinel"]
    assert len(sentinel) == 2 and sentinel[0]["body"] == {}


def test_team_account_sends_its_workspace_id(gateway, fake_chatgpt):
    accounts("at-ok-team", account_id="ws-team-123")
    ask(gateway)
    assert {r["headers"]["chatgpt-account-id"] for r in fake_chatgpt.requests} == {"ws-team-123"}


@pytest.mark.parametrize("framing", ["v1", "legacy"])
def test_reasoning_comes_as_reasoning_content(gateway, fake_chatgpt, framing):
    fake_chatgpt.force_legacy = framing == "legacy"
    accounts("at-ok-reason")
    body = {"model": "o1", "messages": [{"role": "user", "content": "reason about 6*7"}]}
    whole = raw(gateway, body).json()
    assert_valid("CreateChatCompletionResponse", whole)
    assert whole["choices"][0]["message"]["content"] == fake.REASONED
    assert whole["choices"][0]["message"]["reasoning_content"] == fake.REASONING
    chunks = list(client(gateway).chat.completions.create(**body, stream=True))
    deltas = [c.choices[0].delta for c in chunks]
    assert "".join(d.content or "" for d in deltas) == fake.REASONED
    assert "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas) == fake.REASONING


def test_thoughts_reasoning_and_tool_calls_stay_out_of_content(gateway, fake_chatgpt):
    accounts("at-ok-tools")
    reply = client(gateway).chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "think"}])
    assert reply.choices[0].message.content == "42."
    assert "Thought for 2s" in reply.choices[0].message.model_extra["reasoning_content"]
    drawn = ask(gateway, "draw a fox")  # history is off here: the image is a note, the tool call stays hidden
    assert drawn.endswith(fake.CAPTION) and "needs chat history" in drawn and "prompt" not in drawn


@pytest.mark.parametrize("model", ["gpt-4-gizmo-g-Abc123xyz", "g-Abc123xyz"])
def test_gpts_run_as_gizmo_interaction_on_gpt_4o(gateway, fake_chatgpt, model):
    accounts("at-ok-gizmo")
    reply = client(gateway).chat.completions.create(model=model, messages=HELLO)
    assert reply.model == model and reply.choices[0].message.content == fake.ANSWER
    chunks = list(client(gateway).chat.completions.create(model=model, messages=HELLO, stream=True))
    assert {c.model for c in chunks} == {model}
    for request in conversations(fake_chatgpt):
        assert request["body"]["model"] == "gpt-4o"
        assert request["body"]["conversation_mode"] == {"kind": "gizmo_interaction", "gizmo_id": "g-Abc123xyz"}


@pytest.mark.parametrize("framing", ["v1", "legacy"])
def test_answer_cut_at_max_tokens_is_continued_into_one_answer(gateway, fake_chatgpt, framing):
    fake_chatgpt.force_legacy = framing == "legacy"
    accounts("at-ok-continue")
    question = [{"role": "user", "content": "maxtokens please"}]
    chunks = list(client(gateway).chat.completions.create(model="gpt-4o", messages=question, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == fake.CUT + fake.REST
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    first, again = conversations(fake_chatgpt)
    assert first["body"]["action"] == "next" and "messages" not in again["body"]
    assert again["body"]["action"] == "continue" and again["body"]["conversation_id"] == fake.CONVERSATION_ID
    assert again["body"]["parent_message_id"] == "cut-maxtokens-1"  # the cut assistant message
    assert again["headers"]["openai-sentinel-chat-requirements-token"] == fake.SENTINEL_TOKEN
    reply = client(gateway).chat.completions.create(model="gpt-4o", messages=question)
    assert reply.choices[0].message.content == fake.CUT + fake.REST and reply.choices[0].finish_reason == "stop"


def test_continuing_is_bounded_and_then_finishes_with_length(gateway, fake_chatgpt):
    accounts("at-ok-endless")
    reply = client(gateway).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "endless"}])
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == fake.CUT + ", cut again (1), cut again (2), cut again (3)"
    calls = conversations(fake_chatgpt)
    assert [r["body"]["action"] for r in calls] == ["next"] + ["continue"] * 3  # MAX_CONTINUES defaults to 3
    assert [r["body"]["parent_message_id"] for r in calls[1:]] == [f"cut-endless-{n}" for n in (1, 2, 3)]


@pytest.mark.parametrize(("prompt", "reason"), [("endless", "length"), ("moderate this", "content_filter")])
def test_finish_reasons(gateway, fake_chatgpt, prompt, reason):
    accounts("at-ok-finish")
    reply = client(gateway).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])
    assert reply.choices[0].finish_reason == reason
    streamed = raw(gateway, {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "stream": True})
    assert_valid_sse(streamed.text)
    assert f'"finish_reason":"{reason}"' in streamed.text


def test_long_answer_is_streamed_as_it_comes(gateway, fake_chatgpt):
    accounts("at-ok-long")
    stream = client(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "long"}], stream=True
    )
    arrivals = [time.monotonic() for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
    assert len(arrivals) == 30
    assert arrivals[-1] - arrivals[0] > 0.3  # the words were not buffered into one burst


# --- Failures -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("refresh_token", "status"), [("rt-refresh-me", Status.NEEDS_REFRESH), ("", Status.INVALID)])
def test_expired_token_marks_the_credential(gateway, fake_chatgpt, refresh_token, status):
    token = "at-401-" + uuid.uuid4().hex
    (cred,) = accounts(token, refresh_token=refresh_token)
    with pytest.raises(openai.APIStatusError) as err:
        ask(gateway)
    assert err.value.status_code == 502
    cred.refresh_from_db()
    assert cred.status == status
    assert "expired" in cred.last_error
    assert token not in err.value.message and token not in cred.last_error and token not in gateway.logs()


def test_usage_cap_cools_the_credential_for_that_model_only(gateway, fake_chatgpt):
    (cred,) = accounts("at-429-cap")
    with pytest.raises(openai.APIStatusError):
        ask(gateway, model="gpt-4o")
    cred.refresh_from_db()
    assert cred.cooldown_until is None and list(cred.model_cooldowns) == ["gpt-4o"]
    left = datetime.fromisoformat(cred.model_cooldowns["gpt-4o"]).timestamp() - time.time()
    assert 3500 < left <= 3600
    settle()
    with pytest.raises(openai.RateLimitError):
        ask(gateway, model="gpt-4o")
    assert fake_chatgpt.calls["at-429-cap"] == 1
    with pytest.raises(openai.APIStatusError):
        ask(gateway, model="gpt-4o-mini")  # another model is still tried on this account
    assert fake_chatgpt.calls["at-429-cap"] == 2


def test_bare_429_cools_the_whole_credential_for_retry_after(gateway, fake_chatgpt):
    (cred,) = accounts("at-ratelimit-1")
    with pytest.raises(openai.APIStatusError):
        ask(gateway)
    cred.refresh_from_db()
    assert cred.model_cooldowns == {} and 30 < cred.cooldown_until.timestamp() - time.time() <= 42


@pytest.mark.parametrize(
    ("token", "reason"), [("at-403-cf", "Cloudflare challenge"), ("at-unusual-1", "unusual activity")]
)
def test_blocked_account_is_cooled_down(gateway, fake_chatgpt, token, reason):
    (cred,) = accounts(token)
    with pytest.raises(openai.APIStatusError) as err:
        ask(gateway)
    assert f"upstream blocked this account ({reason}" in err.value.message
    assert "<html" not in err.value.message.lower()
    cred.refresh_from_db()
    assert cred.status == Status.COOLING and cred.cooldown_until is not None


@pytest.mark.parametrize(
    ("token", "challenge"),
    [
        ("at-pow-1", "proof-of-work"),
        ("at-turnstile-1", "Turnstile"),
        ("at-arkose-1", "Arkose"),
        ("at-login-1", "force_login"),
    ],
)
def test_challenge_is_reported_never_solved(gateway, fake_chatgpt, token, challenge):
    accounts(token)
    response = raw(gateway, {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 502
    assert_valid("ErrorResponse", response.json())
    error = response.json()["error"]
    assert error["type"] == "upstream_challenge_required" and challenge in error["message"]
    assert fake_chatgpt.calls[token] == 0  # the conversation was never attempted
    assert not any(h.startswith("openai-sentinel-proof") for r in fake_chatgpt.requests for h in r["headers"])


@pytest.mark.parametrize(
    "bad",
    [
        "at-pow-2",
        "at-500-2",
        "at-err-2",
        "at-empty-2",
        "at-403-2",
        "at-sentinel404-2",
        "at-sentinel502-2",
        "at-handoff-2",
    ],
)
def test_failover_to_a_good_credential(gateway, fake_chatgpt, bad):
    accounts(bad, "at-ok-good")
    for _ in range(30):  # the pick is random: go on until the bad credential has been tried once
        assert ask(gateway) == fake.ANSWER
        if any(r["token"] == bad for r in fake_chatgpt.requests):
            break
    else:
        pytest.fail("the bad credential was never picked")
    assert not any(h.startswith("openai-sentinel-proof") for r in fake_chatgpt.requests for h in r["headers"])


@pytest.mark.parametrize("token", ["at-sentinel404-1", "at-sentinel502-1"])
def test_sentinel_failure_is_the_credential_s_never_the_client_s(gateway, fake_chatgpt, token):
    accounts(token)
    response = raw(gateway, {"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 502, response.text
    assert_valid("ErrorResponse", response.json())
    assert (
        response.json()["error"]["type"] != "invalid_request_error"
        and "sentinel" in response.json()["error"]["message"]
    )
    assert fake_chatgpt.calls[token] == 0


def test_stream_handoff_is_a_failure_never_a_cut_answer(gateway, fake_chatgpt):
    accounts("at-handoff-1")
    whole = raw(gateway, {"model": "gpt-4o", "messages": HELLO})
    assert whole.status_code == 502 and "stream_handoff" in whole.json()["error"]["message"]
    streamed = raw(gateway, {"model": "gpt-4o", "messages": HELLO, "stream": True})
    frames = [line for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert '"content"' in frames[1] and '"error"' in frames[-1] and '"finish_reason":"stop"' not in streamed.text


def test_request_error_is_not_retried_elsewhere(gateway, fake_chatgpt):
    accounts("at-413-big", "at-ok-other")
    for _ in range(30):
        fake_chatgpt.reset()
        try:
            ask(gateway)
        except openai.APIStatusError as err:
            assert err.status_code == 413 and "too long" in err.message
            assert [r["token"] for r in conversations(fake_chatgpt)] == ["at-413-big"]
            return
    pytest.fail("the 413 credential was never picked")


def test_connection_drop_mid_stream_ends_with_an_error_event(gateway, fake_chatgpt):
    accounts("at-drop-1")
    streamed = raw(gateway, {"model": "gpt-4o", "messages": HELLO, "stream": True})
    errors = sse_errors(streamed.text)
    assert set(errors) == {"the stream does not end with data: [DONE]", "choice 0: no finish_reason"}
    frames = [line for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert '"content"' in frames[1] and '"error"' in frames[-1] and "[DONE]" not in streamed.text
    with pytest.raises(openai.APIError):
        list(client(gateway).chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    whole = raw(gateway, {"model": "gpt-4o", "messages": HELLO})  # not a byte sent yet: failed over, none left
    assert whole.status_code == 502 and "after every retry" in whole.json()["error"]["message"]


# --- Challenges cool the account, on every node, whatever ENABLE_LIMIT says ----------------------------
@pytest.fixture(scope="module")
def unlimited_gateway(gateway_env) -> Iterator[Gateway]:
    server = Gateway({**gateway_env, "ENABLE_LIMIT": "false"}).start()
    yield server
    server.stop()


def test_challenge_cools_the_account_on_every_node_even_without_enable_limit(unlimited_gateway, gateway, fake_chatgpt):
    (cred,) = accounts("at-turnstile-cool")
    body = {"model": "gpt-4o", "messages": HELLO}
    first = raw(unlimited_gateway, body)
    assert first.status_code == 502 and first.json()["error"]["code"] == "upstream_challenge_required"
    cred.refresh_from_db()
    assert cred.status == Status.COOLING and 800 < cred.cooldown_until.timestamp() - time.time() <= 900
    settle()
    for node in (unlimited_gateway, gateway):  # the other node too skips it without a sentinel call
        again = raw(node, body)
        assert again.status_code == 429 and 800 < int(again.headers["retry-after"]) <= 900
    assert sum(r["kind"] == "sentinel" for r in fake_chatgpt.requests) == 1


# --- Models ---------------------------------------------------------------------------------------
def test_2026_slugs_and_reasoning_effort_as_thinking_effort(gateway, fake_chatgpt):
    accounts("at-ok-slugs")
    listed = {m.id for m in client(gateway).models.list()}
    assert {"auto", "gpt-5.3", "gpt-5.4-thinking", "gpt-5.5-pro"} <= listed
    ask(gateway, model="gpt-5.4-thinking", reasoning_effort="high")
    ask(gateway, model="gpt-5-3")  # the web slug itself
    ask(gateway, model="auto", reasoning_effort="minimal")
    sent = [(r["body"]["model"], r["body"].get("thinking_effort")) for r in conversations(fake_chatgpt)]
    assert sent == [("gpt-5-4-thinking", "extended"), ("gpt-5-3", None), ("auto", "min")]


# --- A caller's own token -------------------------------------------------------------------------
def test_own_access_token_needs_no_pool(gateway, fake_chatgpt):
    assert ask(gateway, key="eyJok-own-token.e30.sig") == fake.ANSWER
    assert ask(gateway, key="eyJok-own-token.e30.sig,ws-own-9") == fake.ANSWER
    by_header = HTTP.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"Authorization": "Bearer eyJok-own-token.e30.sig", "ChatGPT-Account-ID": "ws-own-10"},
    )
    assert by_header.status_code == 200, by_header.text
    first, second, third = conversations(fake_chatgpt)
    assert first["headers"]["authorization"] == "Bearer eyJok-own-token.e30.sig"
    assert "chatgpt-account-id" not in first["headers"]
    assert second["headers"]["chatgpt-account-id"] == "ws-own-9"
    assert third["headers"]["chatgpt-account-id"] == "ws-own-10"
    with pytest.raises(openai.AuthenticationError) as err:
        ask(gateway, key="eyJ401-own-token.e30.sig")
    assert err.value.body["code"] == "invalid_api_key"


# --- A gateway with AUTH_KEY, CONVERSATION_ONLY and history on ------------------------------------
@pytest.fixture(scope="module")
def private_gateway(gateway_env) -> Iterator[Gateway]:
    env = {
        **gateway_env,
        "AUTH_KEY": "private-gateway-key",
        "CONVERSATION_ONLY": "true",
        "HISTORY_DISABLED": "false",
    }
    server = Gateway(env).start()
    yield server
    server.stop()


def test_authkey_conversation_only_and_history(private_gateway, fake_chatgpt):
    assert ask(private_gateway, key="eyJok-private.e30.sig") == fake.ANSWER
    assert [r["kind"] for r in fake_chatgpt.requests] == ["conversation"]
    (request,) = fake_chatgpt.requests
    assert request["headers"]["authkey"] == "private-gateway-key"
    assert "openai-sentinel-chat-requirements-token" not in request["headers"]
    assert request["body"]["history_and_training_disabled"] is False


@pytest.mark.parametrize("stream", [False, True])
def test_conversation_id_header_when_history_is_kept(private_gateway, gateway, fake_chatgpt, stream):
    body = {"model": "gpt-4o", "messages": HELLO, "stream": stream}
    kept = raw(private_gateway, body, key="eyJok-history.e30.sig")
    assert kept.status_code == 200 and kept.headers["x-conversation-id"] == fake.CONVERSATION_ID
    assert "conversation_id" not in kept.text  # a header, not a body field
    if stream:
        assert_valid_sse(kept.text)
    else:
        assert_valid("CreateChatCompletionResponse", kept.json())
    reply = client(private_gateway, "eyJok-history.e30.sig").chat.completions.with_raw_response.create(**body)
    assert reply.headers["x-conversation-id"] == fake.CONVERSATION_ID
    assert "x-conversation-id" not in raw(gateway, body, key="eyJok-no-history.e30.sig").headers  # history disabled
