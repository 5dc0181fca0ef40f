"""Usage counted offline with the tokenizer of the model's family."""

from __future__ import annotations

import time

import pytest

from openai_compat.schema import ChatRequest
from openai_compat.usage import CL100K, O200K, count_tokens, encoding_for, estimate_usage

SAMPLES = [
    "Hello, world!",
    "The quick brown fox 🦊 jumps over 13 lazy dogs.\n\n    def f(x):\n        return x ** 2\n",
    "日本語のテキストと English mixed, with numbers 1234567 and ünïcödé.",
    "<|endoftext|> is plain text in a prompt",
    "   leading spaces and trailing\t\t\n\n\n",
]


def request(model: str, *messages: dict) -> ChatRequest:
    return ChatRequest(model=model, messages=list(messages), stream=False, include_usage=False, body={})


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K),
        ("gpt-4o-mini", O200K),
        ("gpt-4.1", O200K),
        ("gpt-4.5", O200K),
        ("gpt-5", O200K),
        ("o1", O200K),
        ("o3-mini-high", O200K),
        ("o4-mini", O200K),
        ("gpt-4-gizmo-g-Abc123", O200K),
        ("g-Abc123", O200K),
        ("auto", O200K),
        ("some-local-model", O200K),
        ("gpt-4", CL100K),
        ("gpt-4-mobile", CL100K),
        ("gpt-4-turbo-2024-04-09", CL100K),
        ("gpt-3.5-turbo", CL100K),
        ("text-davinci-002-render-sha", CL100K),
    ],
)
def test_encoding_by_model_family(model: str, encoding: str):
    assert encoding_for(model) == encoding


def test_known_counts():
    assert count_tokens("Hello, world!", "gpt-4o") == 4
    assert count_tokens("日本語のテキストです。", "gpt-4o") == 8
    assert count_tokens("日本語のテキストです。", "gpt-4") == 10
    assert count_tokens("", "gpt-4o") == 0


@pytest.mark.parametrize(("encoding", "model"), [(O200K, "gpt-4o"), (CL100K, "gpt-3.5-turbo")])
def test_counts_match_tiktoken(encoding: str, model: str):
    """tiktoken, built offline from the same tables, agrees token for token."""
    tiktoken = pytest.importorskip("tiktoken")
    registry = pytest.importorskip("bpe_openai.registry")
    reference = tiktoken.Encoding(**registry.ENCODING_CONSTRUCTORS[encoding]())
    for text in SAMPLES:
        assert count_tokens(text, model) == len(reference.encode_ordinary(text)), text


def test_usage_of_a_chat():
    chat = request(
        "gpt-4o",
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hello, world!"}, {"type": "image_url"}]},
        {"role": "user", "name": "ann", "content": "Hi"},
    )
    usage = estimate_usage(chat, "Hello, world!")
    system, user, named = 3 + 1 + 3, 3 + 1 + 4, 3 + 1 + 1 + 1 + 1  # framing + role + content (+ name)
    prompt = system + user + named + 3  # and every reply is primed with three
    assert usage == {"prompt_tokens": prompt, "completion_tokens": 4, "total_tokens": prompt + 4}


def test_counting_is_fast_once_loaded():
    count_tokens("warm up", "gpt-4o")
    text = "All work and no play makes Jack a dull boy. " * 5000
    start = time.perf_counter()
    for _ in range(10):
        assert count_tokens(text, "gpt-4o") > 40_000
    assert time.perf_counter() - start < 1.0
