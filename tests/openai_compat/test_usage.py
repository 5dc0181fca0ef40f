"""Usage counted offline with the tokenizer of the model's family."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from openai_compat.schema import ChatRequest
from openai_compat.usage import CL100K, O200K, VOCAB_URL, count_tokens, encoding_for, estimate_usage
from tests.cluster import run_python

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


@pytest.mark.parametrize(("model", "counts"), [("gpt-4o", [4, 26, 22, 13, 7]), ("gpt-3.5-turbo", [4, 26, 27, 13, 7])])
def test_counts_unchanged(model: str, counts: list[int]):
    """The counts bpe-openai gave before the switch to tiktoken, token for token."""
    assert [count_tokens(text, model) for text in SAMPLES] == counts


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


# Child processes that may not resolve or connect anywhere: an audit hook fails every attempt, so loading a
# vocabulary passes only if nothing is downloaded.
OFFLINE = """
import sys

def deny(event, args):
    if event in ("socket.getaddrinfo", "socket.connect"):
        raise OSError(f"network access: {event} {args[:2]}")

sys.addaudithook(deny)
"""
# Counts with both vocabularies; `sys.argv[1]`, when given, replaces settings.VAR_DIR.
COUNT = """
import json, os
from pathlib import Path
from django.conf import settings
if len(sys.argv) > 1:
    settings.VAR_DIR = Path(sys.argv[1])
from openai_compat.usage import count_tokens
counts = [count_tokens("Hello, world!", "gpt-4o"), count_tokens("日本語のテキストです。", "gpt-4")]
print(json.dumps({"counts": counts, "cache": os.environ["TIKTOKEN_CACHE_DIR"]}))
"""


def count_offline(env: dict[str, str], *args: str) -> dict:
    result = run_python({"DJANGO_SETTINGS_MODULE": "tests.settings", **env}, "-c", OFFLINE + COUNT, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def cached_copy(folder: Path, encoding: str) -> Path:
    """Where tiktoken looks for a vocabulary before it downloads it."""
    return folder / hashlib.sha1(VOCAB_URL.format(encoding).encode()).hexdigest()


def test_the_guard_catches_a_download(tmp_path: Path):
    """Control: a vocabulary that does not ship (r50k_base) makes tiktoken try the network, and the hook stops it."""
    code = OFFLINE + "import tiktoken; tiktoken.get_encoding('r50k_base')"
    result = run_python({"TIKTOKEN_CACHE_DIR": str(tmp_path)}, "-c", code)
    assert result.returncode != 0 and "network access: socket.getaddrinfo" in result.stderr


def test_counts_offline_from_an_empty_cache(tmp_path: Path):
    cache = tmp_path / "operator-cache"
    assert count_offline({"TIKTOKEN_CACHE_DIR": str(cache)}) == {"counts": [4, 10], "cache": str(cache)}
    assert cached_copy(cache, O200K).stat().st_size > 3_000_000 and cached_copy(cache, CL100K).exists()


def test_a_damaged_cached_copy_is_replaced(tmp_path: Path):
    """tiktoken would delete a copy whose sha256 is wrong and download the file again."""
    cached_copy(tmp_path, O200K).write_bytes(b"not a vocabulary")
    assert count_offline({"TIKTOKEN_CACHE_DIR": str(tmp_path)})["counts"] == [4, 10]


def test_the_cache_is_under_var_unless_the_operator_chose_one(tmp_path: Path):
    """An empty TIKTOKEN_CACHE_DIR counts as unset (tiktoken would read it as: download every time)."""
    var = tmp_path / "var"
    assert count_offline({"TIKTOKEN_CACHE_DIR": ""}, str(var)) == {"counts": [4, 10], "cache": str(var / "tiktoken")}


def test_a_read_only_var_falls_back_to_a_temp_folder(tmp_path: Path):
    blocked = tmp_path / "a-file"
    blocked.write_text("var/ cannot be created below a file")
    tmp_path.joinpath("tmp").mkdir()
    env = {"TIKTOKEN_CACHE_DIR": "", "TMPDIR": str(tmp_path / "tmp")}
    assert count_offline(env, str(blocked / "var"))["cache"] == str(tmp_path / "tmp" / "chat2api-tiktoken")
