"""`POST /v1/responses` through the real gateway: errors, stored conversations, usage.

The real clients (the openai SDK's helpers, the Agents SDK, the Codex CLI) are in `test_responses_clients.py` and
`test_codex_cli.py`; here the wire itself is checked, with httpx, against the spec. A client leaving mid-stream is in
`tests/middle/test_responses.py` (the servers' side of a hang-up, the same for every stream: `test_hangup.py`).
"""

from __future__ import annotations

import httpx
import pytest

from tests.factories import chatgpt_account, openai_key
from tests.fakes.openai_server import ANSWER
from tests.gateway import eventually, settle
from tests.spec import assert_valid, assert_valid_responses_stream
from tokens.models import Usage

pytestmark = pytest.mark.django_db(transaction=True)
AUTH = {"Authorization": "Bearer test-code"}
MODEL = "fake-model"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def post(gateway, timeout: float = 30, **body) -> httpx.Response:
    return httpx.post(gateway.url + "/v1/responses", json={"model": MODEL, **body}, headers=AUTH, timeout=timeout)


@pytest.fixture
def key(fake_openai):
    made = openai_key(fake_openai.url + "/v1", "sk-ok-responses", [MODEL])
    settle()
    return made


def test_non_stream_answer_validates_and_is_stored(gateway, fake_openai, key):
    reply = post(gateway, input="Say hello", instructions="Be brief.", metadata={"run": "1"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert_valid("Response", body)
    assert body["status"] == "completed" and body["metadata"] == {"run": "1"}
    assert body["output"][-1]["content"][0]["text"] == ANSWER
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    sent = fake_openai.requests[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    stored = httpx.get(f"{gateway.url}/v1/responses/{body['id']}", headers=AUTH, timeout=10)
    assert stored.status_code == 200 and stored.json()["output"] == body["output"]


def test_stream_follows_the_event_rules(gateway, key):
    with httpx.stream("POST", gateway.url + "/v1/responses", json={"model": MODEL, "input": "Hi", "stream": True},
                      headers=AUTH, timeout=30) as reply:  # fmt: skip
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        raw = reply.read()
    events = assert_valid_responses_stream(raw)
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][-1]["content"][0]["text"] == ANSWER


def test_previous_response_id_replays_the_conversation(gateway, fake_openai, key):
    first = post(gateway, input="My name is Ada.", instructions="Be brief.").json()
    second = post(gateway, input="What is my name?", previous_response_id=first["id"], stream=True)
    assert second.status_code == 200
    assert_valid_responses_stream(second.content)
    assert fake_openai.requests[-1]["messages"] == [  # as OpenAI does, instructions are not carried over
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": ANSWER},
        {"role": "user", "content": "What is my name?"},
    ]


def test_store_false_keeps_nothing(gateway, key):
    body = post(gateway, input="Forget me", store=False).json()
    assert body["store"] is False
    assert httpx.get(f"{gateway.url}/v1/responses/{body['id']}", headers=AUTH, timeout=10).status_code == 404
    follow = post(gateway, input="again", previous_response_id=body["id"])
    assert follow.status_code == 400
    assert follow.json()["error"]["param"] == "previous_response_id"
    assert follow.json()["error"]["code"] == "previous_response_not_found"


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"input": 5}, 400, "input", "invalid_type"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, 400, "input[0].call_id", None),
        ({"input": "hi", "temperature": 3}, 400, "temperature", "decimal_above_max_value"),
        ({"input": "hi", "tools": [{"type": "function"}]}, 400, "tools[0].name", None),
        ({"input": "hi", "model": "no-such-model"}, 404, "model", "model_not_found"),
    ],
)
def test_bad_requests_name_their_param(gateway, key, body, status, param, code):
    reply = post(gateway, **body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert_valid("ErrorResponse", reply.json())
    assert error["param"] == param
    if code:
        assert error["code"] == code


def test_tools_refused_where_no_credential_can_call_them(gateway, fake_chatgpt):
    chatgpt_account("eyJ-web-only", account_id="acct-web-only")
    settle()
    refused = post(gateway, model="gpt-4o", input="weather?", tools=[WEATHER])
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "tools"
    assert refused.json()["error"]["code"] == "tools_not_supported"
    answered = post(gateway, model="gpt-4o", input="Say hello")
    assert answered.status_code == 200, answered.text
    assert_valid("Response", answered.json())


def test_usage_is_recorded_per_credential_and_model(gateway, key):
    for stream in (False, True):
        assert post(gateway, input="count me", stream=stream).status_code == 200
    assert eventually(lambda: sum(u.requests for u in Usage.objects.filter(credential=key, model=MODEL)) == 2, 10)
    row = Usage.objects.get(credential=key, model=MODEL)
    assert row.prompt_tokens > 0 and row.completion_tokens > 0
