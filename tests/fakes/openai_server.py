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
With `tools`, a chat request whose last message is not a `tool` message is answered with a call to the first
tool (arguments from its schema: "Paris" for each string property, e.g. `{"city": "Paris"}`); after a tool
message the answer is "The tool said: <its content>".
`POST /v1/responses` speaks the Responses API (stream: created, in_progress, each item's added / delta / done
events, completed with usage; non-stream: the final response), with the same key scenarios (`sk-err…` ends
with `response.failed`) and the same tool rule (a `function_call` to the first function tool until a
`function_call_output` comes, then "The tool said: <output>"); with `reasoning`, a reasoning item with a
summary and `encrypted_content` comes first. `requests` keeps every chat and Responses body.
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
from collections.abc import Awaitable, Callable
from typing import Any

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


def _arguments(tool: dict[str, Any]) -> str:
    """A call's arguments built from the tool's schema: every string property is "Paris"."""
    properties = (tool.get("parameters") or {}).get("properties") or {}
    return json.dumps({name: "Paris" for name, spec in properties.items() if spec.get("type") == "string"})


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return str(content or "")


def _chat_tool(body: dict) -> dict | None:
    """The first tool, when the request offers tools and the last message is not a tool's answer."""
    tools = [t["function"] for t in body.get("tools") or () if t.get("type") == "function"]
    return tools[0] if tools and (body.get("messages") or [{}])[-1].get("role") != "tool" else None


def _chat_words(body: dict) -> list[str]:
    last = (body.get("messages") or [{}])[-1]
    return ["The tool said: ", _text(last.get("content"))] if last.get("role") == "tool" else WORDS


def _refusal(key: str) -> web.Response | None:
    """The key scenarios that fail before any byte of an answer."""
    if key.startswith("sk-401"):
        return _error(401, "Incorrect API key provided.", "invalid_api_key")
    if key.startswith("sk-429"):
        return _error(429, "Rate limit reached for requests.", "rate_limit_exceeded", {"Retry-After": "30"})
    if key.startswith("sk-403"):
        return _error(403, "Forbidden from this region.", "forbidden")
    if key.startswith("sk-500"):
        return web.Response(status=500, text="Internal upstream failure")
    return None


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
    async def received(request: web.Request) -> tuple[str, dict]:
        """The caller's key and the body, counted and kept."""
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        body = await request.json()
        if server_ref:
            server_ref[0].calls[key] += 1
            server_ref[0].requests.append(body)
        return key, body

    async def chat(request: web.Request) -> web.StreamResponse:
        key, body = await received(request)
        model = body.get("model", "fake-model")
        once = FAIL_ONCE.search(json.dumps(body.get("messages")))
        if once and server_ref and once.group() not in server_ref[0].failed_once:
            server_ref[0].failed_once.add(once.group())
            return web.Response(status=500, text="Internal upstream failure (once for this prompt)")
        if key.startswith("sk-late-"):  # a slow start (1 s before any byte), then the scenario that follows
            await asyncio.sleep(1.0)
            key = "sk-" + key.removeprefix("sk-late-")
        if refused := _refusal(key):
            return refused
        tool = _chat_tool(body)
        if not body.get("stream"):
            return web.json_response(_completion(model, _chat_words(body), tool))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if key.startswith("sk-err"):
            await response.write(b'data: {"error": {"message": "The model crashed.", "type": "server_error"}}\n\n')
            return response
        if tool is not None:
            return await _stream_call(response, model, tool, body)
        words = [] if key.startswith("sk-empty") else _chat_words(body)
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
        await _stream_end(response, model, body, "stop", len(words))
        return response

    async def responses(request: web.Request) -> web.StreamResponse:
        key, body = await received(request)
        if refused := _refusal(key):
            return refused
        events = ResponsesStream(body, failed=key.startswith("sk-err")).events()
        if not body.get("stream"):
            return web.json_response(events[-1]["response"])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in events:
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        return response

    def tracked(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Callable:
        async def run(request: web.Request) -> web.StreamResponse:
            if not server_ref:
                return await handler(request)
            server, key = server_ref[0], request.headers.get("Authorization", "").removeprefix("Bearer ")
            server.order.append(key)
            server.open[key] += 1
            server.peak[key] = max(server.peak[key], server.open[key])
            try:
                return await handler(request)
            finally:
                server.open[key] -= 1

        return run

    async def models(request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if server_ref:
            server_ref[0].model_lists[key] += 1
        if key.startswith("sk-401"):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        return web.json_response({"object": "list", "data": MODELS})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", tracked(chat))
    app.router.add_post("/v1/responses", tracked(responses))
    app.router.add_get("/v1/models", models)
    return app


def _call(tool: dict) -> dict:
    return {"id": f"call_{tool['name']}_1", "type": "function", "function": {"name": tool["name"], "arguments": ""}}


async def _stream_call(response: web.StreamResponse, model: str, tool: dict, body: dict) -> web.StreamResponse:
    """A tool call in the usual fragments: the call with empty arguments, then the arguments in two pieces."""
    arguments = _arguments(tool)
    await response.write(
        _chunk(model, {"role": "assistant", "content": None, "tool_calls": [{"index": 0, **_call(tool)}]})
    )
    for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
        await response.write(_chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    await _stream_end(response, model, body, "tool_calls", 2)
    return response


async def _stream_end(response: web.StreamResponse, model: str, body: dict, finish: str, completion: int) -> None:
    await response.write(_chunk(model, {}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 7, "completion_tokens": completion, "total_tokens": 7 + completion}
        obj = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
        await response.write(b"data: " + json.dumps({**obj, "choices": [], "usage": usage}).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")


def _completion(model: str, words: list[str], tool: dict | None) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(words)}
    if tool is not None:
        call = _call(tool)
        call["function"]["arguments"] = _arguments(tool)
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool else "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)},
    }


class ResponsesStream:
    """The events of one Responses answer, in the order OpenAI sends them, numbered by `sequence_number`."""

    def __init__(self, body: dict, failed: bool = False) -> None:
        self.body, self.failed, self.out, self.output = body, failed, [], []
        self.response = {
            "id": "resp_fake",
            "object": "response",
            "created_at": int(time.time()),
            "model": body.get("model", "fake-model"),
            "status": "in_progress",
            "output": [],
            **{name: None for name in ("error", "incomplete_details", "instructions", "temperature", "top_p")},
            "tools": body.get("tools") or [],
            "tool_choice": body.get("tool_choice") or "auto",
            "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
            "metadata": {},
        }

    def send(self, kind: str, **fields: Any) -> None:
        self.out.append({"type": kind, "sequence_number": len(self.out), **fields})

    def events(self) -> list[dict]:
        self.send("response.created", response=self.response)
        self.send("response.in_progress", response=self.response)
        if self.body.get("reasoning"):
            self.reasoning()
        items = self.body.get("input") or []
        last = items[-1] if isinstance(items, list) and items else {}
        tools = [t for t in self.body.get("tools") or () if t.get("type") == "function"]
        if tools and last.get("type") != "function_call_output":
            self.call(tools[0])
        else:
            output = last.get("type") == "function_call_output"
            self.message(["The tool said: ", _text(last.get("output"))] if output else WORDS)
        if self.failed:
            error = {"code": "server_error", "message": "The model crashed."}
            self.send("response.failed", response={**self.response, "status": "failed", "error": error})
        else:
            usage = {
                "input_tokens": 7,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": 5,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 12,
            }
            done = {**self.response, "status": "completed", "output": self.output, "usage": usage}
            self.send("response.completed", response=done)
        return self.out

    def added(self, item: dict) -> int:
        self.send("response.output_item.added", output_index=len(self.output), item=item)
        return len(self.output)

    def done(self, index: int, item: dict) -> None:
        self.send("response.output_item.done", output_index=index, item=item)
        self.output.append(item)

    def reasoning(self) -> None:
        item = {"type": "reasoning", "id": "rs_fake", "summary": []}
        index, where = self.added(item), {"item_id": "rs_fake", "summary_index": 0}
        self.send("response.reasoning_summary_text.delta", output_index=index, delta="Thinking it over.", **where)
        summary = [{"type": "summary_text", "text": "Thinking it over."}]
        self.done(index, {**item, "summary": summary, "encrypted_content": "enc-fake-reasoning"})

    def message(self, words: list[str]) -> None:
        item = {"type": "message", "id": "msg_fake", "role": "assistant", "status": "in_progress", "content": []}
        index = self.added(item)
        where = {"item_id": "msg_fake", "output_index": index, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        self.send("response.content_part.added", part=part, **where)
        for word in words:
            self.send("response.output_text.delta", delta=word, logprobs=[], **where)
        text = "".join(words)
        self.send("response.output_text.done", text=text, logprobs=[], **where)
        self.send("response.content_part.done", part={**part, "text": text}, **where)
        self.done(index, {**item, "status": "completed", "content": [{**part, "text": text}]})

    def call(self, tool: dict) -> None:
        item = {"type": "function_call", "id": "fc_fake", "call_id": f"call_{tool['name']}_1", "name": tool["name"]}
        index, arguments = self.added({**item, "arguments": "", "status": "in_progress"}), _arguments(tool)
        where = {"item_id": "fc_fake", "output_index": index}
        self.send("response.function_call_arguments.delta", delta=arguments, **where)
        self.send("response.function_call_arguments.done", name=tool["name"], arguments=arguments, **where)
        self.done(index, {**item, "arguments": arguments, "status": "completed"})


def start() -> OpenAIFake:
    return OpenAIFake.launch(make_app)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between streamed chunks")
    args = parser.parse_args()
    web.run_app(make_app(delay=args.delay), host="127.0.0.1", port=args.port, access_log=None, print=None)
