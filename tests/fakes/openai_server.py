"""A fake OpenAI-compatible upstream speaking the real wire format over HTTP.

The API key picks the scenario: `sk-ok…` answers, `sk-401…` is refused, `sk-429…` is rate limited
(Retry-After 30), `sk-403…`, `sk-500…`, `sk-drop…` drops the connection mid-stream, `sk-err…` sends an
in-stream error, `sk-empty…` finishes without a word, `sk-slow…` answers one word every 50 ms, `sk-long…` a long answer
(one word every 50 ms for about 6 s), `sk-rich…` some reasoning then Markdown with a list, a code block and an image.
A client that goes away before the end of a streamed answer is counted in `cancelled` (per key).
Whatever the key, a prompt containing `fail-once-<id>` gets a 500 the first time the server sees that id
(a prompt-caused failure: the next credential answers it); the ids seen are in `failed_once`.
`GET /v1/models` lists `MODELS` (one without `created`, as some compatible servers do), or refuses a
`sk-401…` key; `model_lists` counts those calls per key (`calls` counts only chat requests).
Besides `calls`, the server keeps `order` (the key of each request, in arrival order) and `peak` (the
most requests one key ever had open at once).
Run it alone (`python -m tests.fakes.openai_server --port 9000`) for the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import time
from collections import Counter

from aiohttp import web

from tests.fakes.base import FakeServer

ANSWER = "Hello from the fake upstream, one word at a time."
WORDS = [w + " " for w in ANSWER.split(" ")]
WORDS[-1] = WORDS[-1].rstrip()
SVG = "<svg xmlns='http://www.w3.org/2000/svg' width='96' height='64'><rect width='96' height='64' fill='red'/></svg>"
PICTURE = "data:image/svg+xml;base64," + base64.b64encode(SVG.encode()).decode()
FAIL_ONCE = re.compile(r"fail-once-[\w-]+")
LONG_WORDS = [f"word{i} " for i in range(120)]
MODELS = [
    {"id": "fake-model", "object": "model", "created": 1700000000, "owned_by": "fake"},
    {"id": "fake-model-mini", "object": "model", "created": 1710000000, "owned_by": "fake"},
    {"id": "fake-model-undated", "object": "model", "owned_by": "fake"},
]
RICH_REASONING = ["The user wants ", "a short example. ", "A list and some Python will do."]
RICH_ANSWER = [
    "Here is **a short example**:\n\n",
    "- first, a list item\n",
    "- then `inline code`\n\n",
    "```python\n",
    "def greet(name: str) -> str:\n",
    '    return f"Hello, {name}!"\n',
    "```\n\n",
    f"![a generated picture]({PICTURE})\n\n",
    "That is all.",
]


def _error(status: int, message: str, code: str, headers: dict | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _chunk(model: str, delta: dict, finish: str | None = None) -> bytes:
    obj = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class OpenAIFake(FakeServer):
    def __init__(self, app: web.Application) -> None:
        super().__init__(app)
        self.order: list[str] = []
        self.open: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.cancelled: Counter[str] = Counter()  # streamed answers whose client went away before the end
        self.failed_once: set[str] = set()
        self.model_lists: Counter[str] = Counter()  # GET /v1/models per key

    def reset(self) -> None:
        super().reset()
        self.model_lists.clear()
        self.cancelled.clear()
        self.failed_once.clear()
        self.order.clear()
        self.open.clear()
        self.peak.clear()


def make_app(server_ref: list[OpenAIFake] | None = None, delay: float = 0.0) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        body = await request.json()
        if server_ref:
            server_ref[0].calls[key] += 1
            server_ref[0].requests.append(body)
        model = body.get("model", "fake-model")
        once = FAIL_ONCE.search(json.dumps(body.get("messages")))
        if once and server_ref and once.group() not in server_ref[0].failed_once:
            server_ref[0].failed_once.add(once.group())
            return web.Response(status=500, text="Internal upstream failure (once for this prompt)")
        if key.startswith("sk-late-"):  # a slow start (1 s before any byte), then the scenario that follows
            await asyncio.sleep(1.0)
            key = "sk-" + key.removeprefix("sk-late-")
        if key.startswith("sk-401"):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        if key.startswith("sk-429"):
            return _error(429, "Rate limit reached for requests.", "rate_limit_exceeded", {"Retry-After": "30"})
        if key.startswith("sk-403"):
            return _error(403, "Forbidden from this region.", "forbidden")
        if key.startswith("sk-500"):
            return web.Response(status=500, text="Internal upstream failure")
        if not body.get("stream"):
            return web.json_response(_completion(model))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if key.startswith("sk-err"):
            await response.write(b'data: {"error": {"message": "The model crashed.", "type": "server_error"}}\n\n')
            return response
        words = [] if key.startswith("sk-empty") else WORDS
        words = LONG_WORDS if key.startswith("sk-long") else RICH_ANSWER if key.startswith("sk-rich") else words
        pause = 0.05 if key.startswith(("sk-slow", "sk-long")) else delay
        await response.write(_chunk(model, {"role": "assistant", "content": ""}))
        try:
            for part in RICH_REASONING if key.startswith("sk-rich") else ():
                await response.write(_chunk(model, {"reasoning_content": part}))
            for i, word in enumerate(words):
                if pause:
                    await asyncio.sleep(pause)
                await response.write(_chunk(model, {"content": word}))
                if key.startswith("sk-drop") and i == 2:
                    request.transport.close()
                    return response
        except (ConnectionError, asyncio.CancelledError):
            if server_ref:
                server_ref[0].cancelled[key] += 1
            raise
        await response.write(_chunk(model, {}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
            obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
            await response.write(b"data: " + json.dumps({**obj, "choices": [], "usage": usage}).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    async def tracked_chat(request: web.Request) -> web.StreamResponse:
        if not server_ref:
            return await chat(request)
        server, key = server_ref[0], request.headers.get("Authorization", "").removeprefix("Bearer ")
        server.order.append(key)
        server.open[key] += 1
        server.peak[key] = max(server.peak[key], server.open[key])
        try:
            return await chat(request)
        finally:
            server.open[key] -= 1

    async def models(request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if server_ref:
            server_ref[0].model_lists[key] += 1
        if key.startswith("sk-401"):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        return web.json_response({"object": "list", "data": MODELS})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", tracked_chat)
    app.router.add_get("/v1/models", models)
    return app


def _completion(model: str) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": len(WORDS), "total_tokens": 7 + len(WORDS)},
    }


def start() -> OpenAIFake:
    return OpenAIFake.launch(make_app)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between streamed chunks")
    args = parser.parse_args()
    web.run_app(make_app(delay=args.delay), host="127.0.0.1", port=args.port, access_log=None, print=None)
