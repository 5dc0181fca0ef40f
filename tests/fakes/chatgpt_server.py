"""A fake ChatGPT web backend speaking the real wire format over HTTP: legacy frames or delta encoding v1.

The access token picks the account's behaviour (a leading `eyJ`, for a caller's own token, or `at-` is
skipped): `ok…` answers; `401…` token expired; `403…` a Cloudflare challenge page; `unusual…` a 403
"unusual activity"; `429…` model cap (clears_in 3600); `ratelimit…` a bare 429 with Retry-After 42;
`413…` message too long; `500…` a proxy error page; `pow…`, `turnstile…`, `arkose…`, `login…` make the
sentinel demand a challenge; `drop…` cuts the connection mid-answer; `err…` sends an in-stream error
before any text; `empty…` finishes without a word.

The last user message picks the answer: "reason" (o1-style `a8km123` reasoning), "think" (2025
`thoughts` + `reasoning_recap`), "draw" (a DALL·E tool call, the image, a caption), "moderate" (blocked by
moderation), "maxtokens" (finish_details max_tokens), "long" (one word every 20 ms), "capture" (replays the
real v1 capture from tests/fixtures). Anything else gets `ANSWER`.

Requests with `supported_encodings: ["v1"]` get delta frames, others legacy frames; `force_legacy` on the
server overrides that. `calls` counts conversation requests per access token; `requests` records every
request (path, kind, token, lower-cased headers, JSON body, and the framing served).
Run it alone with `python -m tests.fakes.chatgpt_server --port 9001`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer

ANSWER = "Hello from the fake ChatGPT, one word at a time."
REASONING = "**Checking arithmetic**\n\nThe user asks 6*7."
THOUGHT = "The user wants a number; 6 times 7 is 42."
CAPTION = "Here is your red fox."
REASONED = "6 \u00d7 7 = 42."  # non-ASCII on purpose
SENTINEL_TOKEN = "fake-req-token"
CONVERSATION_ID = "c0ffee00-0000-4000-8000-000000000001"
CAPTURE = (
    Path(__file__).resolve().parent.parent / "fixtures" / "2026-03-22_f-conversation_delta-encoding-v1_gpt-5-3_team.sse"
)
SCENARIOS = ("401", "403", "unusual", "429", "ratelimit", "413", "500", "pow", "turnstile", "arkose", "login")
SCENARIOS += ("drop", "err", "empty")
KEYWORDS = ("reason", "think", "draw", "moderate", "maxtokens", "long", "capture")
CLOUDFLARE_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    '<div class="cf-spinner-please-wait">Checking your browser</div>'
    "<script>window._cf_chl_opt={cvId: '3', cZone: 'chatgpt.com', cType: 'managed'};</script></body></html>"
)
TEXT_PATHS = {
    "text": "/message/content/parts/0",
    "code": "/message/content/text",
    "thoughts": "/message/content/thoughts/0/content",
    "reasoning_recap": "/message/content/content",
}


class FakeChatGPT(FakeServer):
    def __init__(self, app: web.Application) -> None:
        super().__init__(app)
        self.force_legacy = False

    def reset(self) -> None:
        super().reset()
        self.force_legacy = False


@dataclass
class Msg:
    """One message of the turn; `chunks` are the text increments it streams."""

    role: str
    kind: str
    chunks: list[str]
    name: str | None = None
    recipient: str = "all"
    channel: str | None = None
    end_turn: bool | None = None
    finish: str | None = None
    patch_style: bool = False  # stream text as `patch` ops, as the 2026 capture does
    metadata: dict[str, Any] = field(default_factory=dict)


def words(text: str) -> list[str]:
    parts = text.split(" ")
    return [w + " " for w in parts[:-1]] + [parts[-1]]


def scenario_of(token: str) -> str:
    name = token.removeprefix("eyJ").removeprefix("at-")
    return next((s for s in SCENARIOS if name.startswith(s)), "ok")


def keyword_of(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if (m.get("author") or {}).get("role") == "user"]
    text = " ".join(str(p) for p in (users[-1]["content"].get("parts") or [])) if users else ""
    return next((k for k in KEYWORDS if k in text.lower()), "")


def plan(keyword: str, scenario: str) -> list[Msg | dict]:
    """The messages (and typed events, as dicts) of one turn."""
    if scenario == "empty":
        return [Msg("assistant", "text", [], end_turn=True, finish="stop")]
    final = Msg("assistant", "text", words(ANSWER), end_turn=True, finish="stop")
    if keyword == "reason":
        meta = {"initial_text": "Thinking", "finished_text": "Thought for 3 seconds"}
        return [Msg("tool", "text", words(REASONING), name="a8km123", metadata=meta), _final(REASONED)]
    if keyword == "think":
        thoughts = Msg("assistant", "thoughts", words(THOUGHT), channel="analysis", patch_style=True)
        recap = Msg("assistant", "reasoning_recap", ["Thought for 2s"], channel="analysis")
        return [thoughts, recap, _final("42.", channel="final")]
    if keyword == "draw":
        call = Msg("assistant", "code", ['{"prompt": "a red fox', ', watercolor"}'], recipient="dalle.text2im")
        return [call, Msg("tool", "image", [], name="dalle.text2im"), _final(CAPTION)]
    if keyword == "moderate":
        verdict = {"flagged": True, "blocked": True, "moderation_id": "modr-1"}
        event = {"type": "moderation", "moderation_response": verdict, "message_id": "m1", "is_completion": True}
        return [_final("Something the moderator will dislike."), event]
    if keyword == "maxtokens":
        return [Msg("assistant", "text", words("This answer was cut"), end_turn=False, finish="max_tokens")]
    if keyword == "long":
        final.chunks = words(" ".join(["word"] * 30))
    return [final]


def _final(text: str, channel: str | None = None) -> Msg:
    return Msg("assistant", "text", words(text), channel=channel, end_turn=True, finish="stop", patch_style=True)


# --- Message snapshots ----------------------------------------------------------------------------
def content(kind: str, text: str) -> dict[str, Any]:
    if kind == "code":
        return {"content_type": "code", "language": "json", "text": text}
    if kind == "thoughts":
        thought = {"summary": "Thinking it over", "content": text, "chunks": [], "finished": False}
        return {"content_type": "thoughts", "thoughts": [thought], "source_analysis_msg_id": "x"}
    if kind == "reasoning_recap":
        return {"content_type": "reasoning_recap", "content": text}
    if kind == "image":
        pointer = {"content_type": "image_asset_pointer", "asset_pointer": "file-service://file-AbC123"}
        return {"content_type": "multimodal_text", "parts": [{**pointer, "size_bytes": 3, "width": 1, "height": 1}]}
    return {"content_type": "text", "parts": [text]}


def message(msg: Msg, mid: str, text: str, done: bool, slug: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"model_slug": slug, "default_model_slug": "auto", **msg.metadata}
    if done and msg.finish:
        metadata |= {"finish_details": {"type": msg.finish, "stop_tokens": [200002]}, "is_complete": True}
    return {
        "id": mid,
        "author": {"role": msg.role, "name": msg.name, "metadata": {}},
        "create_time": 1739594200.4,
        "update_time": None,
        "content": content(msg.kind, text),
        "status": "finished_successfully" if done or not msg.chunks else "in_progress",
        "end_turn": msg.end_turn if done else None,
        "weight": 0.0 if msg.name == "a8km123" else 1.0,
        "metadata": metadata,
        "recipient": msg.recipient,
        "channel": msg.channel,
    }


def root(msg: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    return {"message": msg, "conversation_id": CONVERSATION_ID, "error": error}


def frame(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return (head + "data: " + json.dumps(obj) + "\n\n").encode()


USER_ECHO = {"id": "u1", "author": {"role": "user"}, "content": {"content_type": "text", "parts": ["hi"]}}
TRAILER = [
    {"type": "message_stream_complete", "conversation_id": CONVERSATION_ID},
    {"type": "conversation_detail_metadata", "banner_info": None, "blocked_features": [], "model_limits": []},
]


# --- Legacy full-message frames -------------------------------------------------------------------
def legacy_frames(turn: list[Msg | dict], slug: str) -> Iterator[bytes]:
    yield frame(root({**USER_ECHO, "status": "finished_successfully", "recipient": "all"}))
    for n, item in enumerate(turn):
        if isinstance(item, dict):
            yield frame({**item, "conversation_id": CONVERSATION_ID})
            continue
        text, mid = "", f"m{n}"
        yield frame(root(message(item, mid, "", False, slug)))
        for chunk in item.chunks:
            text += chunk
            yield frame(root(message(item, mid, text, False, slug)))
        yield frame(root(message(item, mid, text, True, slug)))


# --- Delta encoding v1 ----------------------------------------------------------------------------
def v1_frames(turn: list[Msg | dict], slug: str) -> Iterator[bytes]:
    yield frame("v1", "delta_encoding")
    yield frame({"type": "input_message", "input_message": USER_ECHO, "conversation_id": CONVERSATION_ID})
    for n, item in enumerate(turn):
        if isinstance(item, dict):
            yield frame({**item, "conversation_id": CONVERSATION_ID})
        else:
            yield from v1_message(item, n, slug)


def v1_message(msg: Msg, n: int, slug: str) -> Iterator[bytes]:
    start = root(message(msg, f"m{n}", "", False, slug))
    # The first root says p/o explicitly; later ones omit them, as recent captures do.
    yield frame({"p": "", "o": "add", "v": start, "c": n} if n == 0 else {"v": start, "c": n}, "delta")
    path = TEXT_PATHS.get(msg.kind, "")
    for i, chunk in enumerate(msg.chunks):
        if msg.patch_style:
            op = {"v": [{"p": path, "o": "append", "v": chunk}]}
            yield frame({"p": "", "o": "patch", **op} if i == 0 else op, "delta")
        else:
            yield frame({"p": path, "o": "append", "v": chunk} if i == 0 else {"v": chunk}, "delta")
    yield frame({"p": "", "o": "patch", "v": closing_ops(msg)}, "delta")


def closing_ops(msg: Msg) -> list[dict[str, Any]]:
    ops = [{"p": "/message/status", "o": "replace", "v": "finished_successfully"}]
    if msg.end_turn is not None:
        ops.append({"p": "/message/end_turn", "o": "replace", "v": msg.end_turn})
    if msg.finish:
        details = {"finish_details": {"type": msg.finish, "stop_tokens": [200002]}, "is_complete": True}
        ops.append({"p": "/message/metadata", "o": "append", "v": details})
    return ops


# --- HTTP -----------------------------------------------------------------------------------------
def json_error(status: int, detail: Any, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"detail": detail}).encode()
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json", **(headers or {})})


def http_error(scenario: str, conversation: bool) -> web.Response | None:
    if scenario == "401":
        message = "Your authentication token has expired. Please try signing in again."
        return json_error(401, {"code": "token_expired", "message": message})
    if scenario == "403":
        return web.Response(status=403, text=CLOUDFLARE_PAGE, content_type="text/html")
    if scenario == "unusual":
        return json_error(403, "Unusual activity has been detected from your device. Try again later. (8a1b2c3d)")
    if scenario == "500":
        return web.Response(status=500, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    if not conversation:
        return None
    if scenario == "429":
        cap = "You've reached the current usage cap for GPT-4o, please try again after 3:14 PM."
        return json_error(429, {"code": "model_cap_exceeded", "clears_in": 3600, "message": cap})
    if scenario == "ratelimit":
        return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": "42"})
    if scenario == "413":
        return json_error(413, "Message too long. Please shorten it and try again.")
    return None


def requirements(scenario: str) -> dict[str, Any]:
    return {
        "persona": "chatgpt-paid",
        "token": SENTINEL_TOKEN,
        "proofofwork": {"required": scenario == "pow", "seed": "0.42", "difficulty": "0fffff"},
        "turnstile": {"required": scenario == "turnstile", "dx": "opaque"},
        "arkose": {"required": scenario == "arkose", "dx": "opaque"},
        "force_login": scenario == "login",
    }


def frames_for(body: dict[str, Any], scenario: str, v1: bool) -> Iterator[bytes]:
    keyword, slug = keyword_of(body), body.get("model", "auto")
    if keyword == "capture":
        yield CAPTURE.read_bytes()
        return
    if scenario == "err":
        text = "Our systems have detected unusual activity from your device. Please try again later."
        yield from ([frame("v1", "delta_encoding")] if v1 else [])
        yield frame(root(None, text))
    else:
        turn = plan(keyword, scenario)
        yield from v1_frames(turn, slug) if v1 else legacy_frames(turn, slug)
        if not body.get("history_and_training_disabled"):
            yield frame({"type": "title_generation", "title": "Greeting", "conversation_id": CONVERSATION_ID})
        yield from (frame(event) for event in TRAILER)
    yield b"data: [DONE]\n\n"


def make_app(server_ref: list[FakeChatGPT] | None = None) -> web.Application:
    def record(request: web.Request, body: Any, kind: str) -> tuple[str, dict[str, Any]]:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        headers = {k.lower(): v for k, v in request.headers.items()}
        entry = {"path": request.path, "kind": kind, "token": token, "headers": headers, "body": body}
        if server_ref:
            server_ref[0].requests.append(entry)
            if kind == "conversation":
                server_ref[0].calls[token] += 1
        return token, entry

    async def sentinel(request: web.Request) -> web.Response:
        token, _ = record(request, await request.json(), "sentinel")
        scenario = scenario_of(token)
        response = http_error(scenario, conversation=False) or web.json_response(requirements(scenario))
        response.set_cookie("oai-sc", "fake-sc")
        return response

    async def conversation(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        token, entry = record(request, body, "conversation")
        scenario = scenario_of(token)
        error = http_error(scenario, conversation=True)
        if error is not None:
            return error
        if scenario in ("pow", "turnstile", "arkose", "login"):
            return json_error(403, "Unusual activity has been detected from your device. Try again later.")
        legacy = bool(server_ref and server_ref[0].force_legacy)
        entry["encoding"] = "v1" if "v1" in (body.get("supported_encodings") or []) and not legacy else "legacy"
        return await stream(request, list(frames_for(body, scenario, entry["encoding"] == "v1")), scenario, body)

    app = web.Application()
    for base in ("/backend-api", "/backend-anon"):
        app.router.add_post(base + "/sentinel/chat-requirements", sentinel)
        app.router.add_post(base + "/conversation", conversation)
        app.router.add_get(base + "/models", models)
    app.router.add_get("/backend-api/accounts/check/v4-2023-04-27", accounts)
    app.router.add_get("/", home)
    return app


async def stream(request: web.Request, frames: list[bytes], scenario: str, body: dict) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    pause = 0.02 if keyword_of(body) == "long" else 0.0
    for i, chunk in enumerate(frames):
        if scenario == "drop" and i == len(frames) // 2:
            request.transport.close()  # the connection dies mid-answer, without [DONE]
            return response
        await response.write(chunk)
        if pause:
            await asyncio.sleep(pause)
    return response


async def models(request: web.Request) -> web.Response:
    slugs = ["auto", "gpt-4o", "gpt-4o-mini", "o1", "o3-mini", "text-davinci-002-render-sha"]
    listed = [{"slug": s, "max_tokens": 8191, "title": s, "description": "", "tags": []} for s in slugs]
    return web.json_response({"models": listed, "categories": [{"category": "gpt_4", "default_model": "auto"}]})


async def accounts(request: web.Request) -> web.Response:
    account_id = request.headers.get("chatgpt-account-id") or "default"
    plan_type = "team" if account_id != "default" else "plus"
    account = {"account_id": account_id, "plan_type": plan_type, "structure": "workspace", "is_deactivated": False}
    return web.json_response(
        {"accounts": {account_id: {"account": account, "features": []}}, "account_ordering": [account_id]}
    )


async def home(request: web.Request) -> web.Response:
    return web.Response(
        text='<!DOCTYPE html><html data-build="fake-build"><body></body></html>', content_type="text/html"
    )


def start() -> FakeChatGPT:
    ref: list[FakeChatGPT] = []
    server = FakeChatGPT(make_app(ref))
    ref.append(server)
    return server.start()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
