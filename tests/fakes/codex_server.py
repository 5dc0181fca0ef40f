"""A fake Codex backend (`POST /backend-api/codex/responses`) speaking shared/codex-protocol.md A2 to A4.

It enforces the backend's body rules with FastAPI's `{"detail": …}` 400s: `store` must be false, `stream`
true, `instructions` a string, `input` a list with no `system` item, every `function_call_output` must
answer a `function_call` of the same `call_id` (and the reverse), and the refused parameters (`temperature`,
`top_p`, the max-token fields, penalties) are refused. A request without `Authorization` is a 401, one
without `ChatGPT-Account-ID` a 403.

The account id (the `ChatGPT-Account-ID` header) picks the scenario by its prefix: `acc-ok…` answers (one
short sentence; a function call to the first tool when tools are given and no tool output came yet, then an
answer naming that output; with `reasoning`, two summary parts first), `acc-shell…` the same but its call is to
the Codex CLI's `exec_command` tool and runs `SHELL_COMMAND`, `acc-text…` answers in words even when
tools are given (as a model that needs none would), `acc-usage…` is 429
`usage_limit_reached` with `resets_at` in `RESET_SECONDS`, `acc-usagein…` the same with only
`resets_in_seconds`, `acc-bad…` a 400 `detail` (a model the plan lacks), `acc-excluded…` 429
`usage_not_included`, `acc-401…` a 401, `acc-cf…` a 403 Cloudflare page, `acc-busy…` 503
`server_is_overloaded`, `acc-429…` a plain 429 with `Retry-After: 30`, `acc-cut…` closes the stream after two
words without `response.completed`, `acc-long…` and `acc-filter…` end with `response.incomplete`
(`max_output_tokens` / `content_filter`), `acc-failed…` ends with `response.failed`.
Every answer carries the `x-codex-*` rate-limit headers (429s too) and one `codex.rate_limits` event;
`response.completed` carries `output: []`, as the real backend may. `calls` counts requests per account id;
`requests` keeps each one's headers and body. `GET /pixel.png` serves a 1x1 PNG.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer

PATH = "/backend-api/codex/responses"
ANSWER = "Hello from the fake Codex backend."
WORDS = [w + " " for w in ANSWER.split(" ")]
WORDS[-1] = WORDS[-1].rstrip()
SUMMARY = ["**Thinking** about a greeting.", "A short one will do."]
ARGUMENTS = ['{"city": ', '"Paris"}']
SHELL_COMMAND = "echo probe-tool-ran > marker.txt && echo done"
REFUSED = ("temperature", "top_p", "max_output_tokens", "max_tokens", "max_completion_tokens")
REFUSED += ("frequency_penalty", "presence_penalty")
RESET_SECONDS = 3600
# a 1x1 PNG, served at GET /pixel.png for the image-URL path
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
USAGE = {
    "input_tokens": 20,
    "input_tokens_details": {"cached_tokens": 8},
    "output_tokens": 12,
    "output_tokens_details": {"reasoning_tokens": 5},
    "total_tokens": 32,
}


def rate_headers() -> dict[str, str]:
    now = int(time.time())
    return {
        "x-codex-primary-used-percent": "37.0",
        "x-codex-primary-window-minutes": "300",
        "x-codex-primary-reset-after-seconds": "1800",
        "x-codex-secondary-used-percent": "12",
        "x-codex-secondary-window-minutes": "10080",
        "x-codex-secondary-reset-at": str(now + 86400),
        "x-codex-plan-type": "plus",
    }


def detail(message: str, status: int = 400) -> web.Response:
    return web.json_response({"detail": message}, status=status)


def body_problem(body: Any) -> str | None:
    """What the real backend would refuse in `body`, as its `detail` says it."""
    if not isinstance(body, dict):
        return "Request body must be an object"
    if body.get("store") is not False:
        return "Store must be set to false"
    if body.get("stream") is not True:
        return "Stream must be set to true"
    if not isinstance(body.get("instructions"), str):
        return "Instructions are required"
    if not isinstance(body.get("input"), list):
        return "Input must be a list"
    for name in REFUSED:
        if name in body:
            return f"Unsupported parameter: {name}"
    items = body["input"]
    if any(item.get("role") == "system" for item in items):
        return "System messages are not allowed"
    calls = {i.get("call_id") for i in items if i.get("type") == "function_call"}
    outputs = {i.get("call_id") for i in items if i.get("type") == "function_call_output"}
    if calls - outputs:
        return f"No tool output found for function call {sorted(calls - outputs)[0]}."
    if outputs - calls:
        return f"No tool call found for function call output with call_id {sorted(outputs - calls)[0]}."
    return None


def limit_error(account: str) -> web.Response | None:
    """The scenarios that fail before any event."""
    headers = rate_headers()
    if account.startswith("acc-excluded"):
        error = {"type": "usage_not_included", "message": "Your plan does not include Codex."}
        return web.json_response({"error": error}, status=429, headers=headers)
    if account.startswith("acc-usage"):
        error = {"type": "usage_limit_reached", "message": "The usage limit has been reached", "plan_type": "plus"}
        if account.startswith("acc-usagein"):
            error["resets_in_seconds"] = RESET_SECONDS
        else:
            error["resets_at"] = int(time.time()) + RESET_SECONDS
        return web.json_response({"error": error}, status=429, headers=headers)
    if account.startswith("acc-bad"):
        return detail("The 'gpt-5.5' model is not supported when using Codex with a ChatGPT account.")
    if account.startswith("acc-401"):
        error = {"message": "Your authentication token has expired.", "code": "token_expired"}
        return web.json_response({"error": error}, status=401)
    if account.startswith("acc-cf"):
        page = "<!DOCTYPE html><html><title>Attention Required! | Cloudflare</title><body>blocked</body></html>"
        return web.Response(status=403, text=page, content_type="text/html")
    if account.startswith("acc-busy"):
        error = {"code": "server_is_overloaded", "message": "Our servers are currently overloaded."}
        return web.json_response({"error": error}, status=503)
    if account.startswith("acc-429"):
        error = {"type": "rate_limit_exceeded", "message": "Too many requests."}
        return web.json_response({"error": error}, status=429, headers={**headers, "Retry-After": "30"})
    return None


class Stream:
    """Writes Responses events in the order the real backend sends them."""

    def __init__(self, response: web.StreamResponse, model: str) -> None:
        self.response, self.model, self.index = response, model, 0

    async def send(self, kind: str, **fields: Any) -> None:
        data = json.dumps({"type": kind, **fields})
        await self.response.write(f"event: {kind}\ndata: {data}\n\n".encode())

    async def reasoning(self) -> None:
        index, item = self.index, {"type": "reasoning", "id": "rs_1", "summary": []}
        await self.send("response.output_item.added", output_index=index, item=item)
        for part, text in enumerate(SUMMARY):
            await self.send(
                "response.reasoning_summary_part.added", item_id="rs_1", output_index=index, summary_index=part
            )
            for piece in (text[:10], text[10:]):
                args = {"item_id": "rs_1", "output_index": index, "summary_index": part}
                await self.send("response.reasoning_summary_text.delta", delta=piece, **args)
            await self.send("response.reasoning_summary_text.done", text=text, item_id="rs_1", output_index=index)
        summary = [{"type": "summary_text", "text": t} for t in SUMMARY]
        done = {**item, "summary": summary, "encrypted_content": "gAAAA-opaque"}
        await self.send("response.output_item.done", output_index=index, item=done)
        self.index += 1

    async def message(self, words: list[str], cut: bool = False) -> None:
        index, item = self.index, {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress"}
        await self.send("response.output_item.added", output_index=index, item={**item, "content": []})
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": "msg_1", "output_index": index, "content_index": 0}
        await self.send("response.content_part.added", part=part, **where)
        for i, word in enumerate(words):
            await self.send("response.output_text.delta", delta=word, **where)
            if cut and i == 1:
                return
        text = "".join(words)
        await self.send("response.output_text.done", text=text, **where)
        await self.send("response.content_part.done", part={**part, "text": text}, **where)
        content = [{**part, "text": text}]
        await self.send(
            "response.output_item.done", output_index=index, item={**item, "status": "completed", "content": content}
        )
        self.index += 1

    async def call(self, tool: dict[str, Any], pieces: list[str]) -> None:
        index = self.index
        item = {"type": "function_call", "id": "fc_1", "call_id": f"call_{tool['name']}_1", "name": tool["name"]}
        await self.send(
            "response.output_item.added", output_index=index, item={**item, "arguments": "", "status": "in_progress"}
        )
        for piece in pieces:
            await self.send("response.function_call_arguments.delta", item_id="fc_1", output_index=index, delta=piece)
        arguments = "".join(pieces)
        await self.send(
            "response.function_call_arguments.done", item_id="fc_1", output_index=index, arguments=arguments
        )
        done = {**item, "arguments": arguments, "status": "completed"}
        await self.send("response.output_item.done", output_index=index, item=done)
        self.index += 1

    async def end(self, kind: str = "response.completed", **extra: Any) -> None:
        status = {"response.completed": "completed", "response.incomplete": "incomplete"}.get(kind, "failed")
        response = {"id": "resp_1", "model": self.model, "status": status, "output": [], "usage": USAGE, **extra}
        await self.send(kind, response=response)


def tool_call(tools: list[dict[str, Any]], account: str) -> tuple[dict[str, Any], list[str]]:
    """The tool to call and its arguments in delta pieces: `exec_command` in the shell scenario, else the first."""
    if account.startswith("acc-shell"):
        arguments = json.dumps({"cmd": SHELL_COMMAND})
        return next(t for t in tools if t["name"] == "exec_command"), [arguments[:12], arguments[12:]]
    return tools[0], ARGUMENTS


def answer_words(body: dict[str, Any]) -> list[str]:
    last = body["input"][-1] if body["input"] else {}
    if last.get("type") == "function_call_output":
        return ["The tool said: ", str(last.get("output"))]
    return WORDS


async def play(request: web.Request, body: dict[str, Any], account: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **rate_headers()})
    await response.prepare(request)
    stream = Stream(response, body["model"])
    created = {"id": "resp_1", "model": body["model"], "created_at": int(time.time()), "status": "in_progress"}
    await stream.send("response.created", response=created)
    await stream.send("response.in_progress", response=created)
    limits = {"primary": {"used_percent": 38.0, "window_minutes": 300, "reset_at": int(time.time()) + 1700}}
    await stream.send("codex.rate_limits", plan_type="plus", rate_limits=limits)
    if body.get("reasoning", {}).get("summary"):
        await stream.reasoning()
    tools = [t for t in body.get("tools") or () if t.get("type") == "function"]
    last = body["input"][-1] if body["input"] else {}
    if tools and last.get("type") != "function_call_output" and not account.startswith("acc-text"):
        await stream.call(*tool_call(tools, account))
    else:
        await stream.message(answer_words(body), cut=account.startswith("acc-cut"))
    if account.startswith("acc-cut"):
        return response  # closed without response.completed
    if account.startswith(("acc-long", "acc-filter")):
        reason = "max_output_tokens" if account.startswith("acc-long") else "content_filter"
        await stream.end("response.incomplete", incomplete_details={"reason": reason})
    elif account.startswith("acc-failed"):
        await stream.end("response.failed", error={"code": "server_error", "message": "The model crashed."})
    else:
        await stream.end()
    return response


def make_app(server_ref: list[FakeServer]) -> web.Application:
    async def responses(request: web.Request) -> web.StreamResponse:
        account = request.headers.get("ChatGPT-Account-ID", "")
        server = server_ref[0]
        server.calls[account] += 1
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return detail("Request body is not valid JSON")
        server.requests.append({"headers": dict(request.headers), "body": body})
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return detail("Unauthorized", 401)
        if not account:
            return detail("Missing ChatGPT-Account-ID", 403)
        if problem := body_problem(body):
            return detail(problem)
        return limit_error(account) or await play(request, body, account)

    async def pixel(request: web.Request) -> web.Response:
        return web.Response(body=PIXEL, content_type="image/png")

    app = web.Application()
    app.router.add_post(PATH, responses)
    app.router.add_get("/pixel.png", pixel)
    return app


def start() -> FakeServer:
    return FakeServer.launch(make_app)
