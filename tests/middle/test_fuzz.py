"""Requests generated from OpenAI's spec against the application: no 5xx, every error in OpenAI's shape.

Three operations (createChatCompletion, listModels, retrieveModel), 2,000 requests in all: chat bodies valid
by the spec (half of them for a model the pool serves, so they reach the fake upstream) and chat bodies with one
node broken at any depth (`"role": {}`, a text part that is a number, a string where an array goes). In process:
what is fuzzed is the application's reading of a body and a path, which no server between them changes.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.factories import chatgpt_account, openai_key
from tests.fuzz import SHORT_TEXT, broken, request_body
from tests.middle.client import Exchange, call, get, loaded
from tests.spec import assert_valid, assert_valid_sse

CHAT = request_body("createChatCompletion")
SENT: Counter[str] = Counter()


def fuzz(examples: int) -> Any:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # find, do not shrink: a failure prints the body that caused it
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture
def served(run, fake_openai, fake_chatgpt) -> str:
    """Every model the spec names reaches an upstream: ChatGPT's through the web backend, `fake-model` the API."""
    openai_key(fake_openai.url + "/v1", "sk-ok-fuzz", ["fake-model"])
    chatgpt_account("at-ok-fuzz")
    run(loaded())
    return "fake-model"


def check(reply: tuple[Exchange, bytes], operation: str) -> Any:
    """The reply's body, once its status and shape are checked: JSON decoded, a stream as it came."""
    exchange, raw = reply
    SENT[operation] += 1
    kind = exchange.headers["content-type"]
    assert exchange.status < 500, raw
    if kind.startswith("text/event-stream"):
        assert_valid_sse(raw.decode())
        return raw
    assert kind.startswith("application/json"), raw[:200]
    body = orjson.loads(raw)
    if exchange.status >= 400:
        assert_valid("ErrorResponse", body)
    elif operation == "createChatCompletion":
        assert_valid("CreateChatCompletionResponse", body)
    return body


def post_chat(run, body: Any, model: str | None) -> None:
    if model and isinstance(body, dict):
        body["model"] = model
    content = json.dumps(body).encode()  # the stdlib also writes integers past 64 bits, which the gateway must refuse
    check(run(call("/v1/chat/completions", content)), "createChatCompletion")


@fuzz(800)
@given(body=CHAT, ours=st.booleans())
def test_valid_chat_bodies(run, served, body, ours):
    post_chat(run, body, served if ours else None)


@fuzz(800)
@given(body=broken(CHAT), ours=st.booleans())
def test_broken_chat_bodies(run, served, body, ours):
    post_chat(run, body, served if ours else None)


@fuzz(100)
@given(query=st.dictionaries(SHORT_TEXT, SHORT_TEXT, max_size=2))
def test_list_models(run, served, query):
    assert_valid("ListModelsResponse", check(run(get("/v1/models", query)), "listModels"))


@fuzz(300)
# "." and ".." are dot segments: every HTTP client resolves them away, so no request could carry them as an id.
@given(model=st.one_of(st.just("fake-model"), st.text(max_size=20).filter(lambda m: m not in (".", ".."))))
def test_retrieve_model(run, served, model):
    reply = run(get("/v1/models/" + quote(model, safe="")))
    found = check(reply, "retrieveModel")
    if reply[0].status == 200:
        assert_valid("Model", found)


def test_two_thousand_requests_were_sent():
    """Runs after the four above (same file, same worker): the budget the issue asks for was really spent."""
    if len(SENT) < 3:
        pytest.skip("run with the fuzz tests above")
    assert sum(SENT.values()) >= 2000, SENT
