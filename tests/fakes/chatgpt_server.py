"""A fake ChatGPT web backend speaking the real wire format over HTTP: legacy frames or delta encoding v1.

The access token picks the account's behaviour (a leading `eyJ`, for a caller's own token, or `at-` is
skipped): `ok…` answers; `401…` token expired; `403…` a Cloudflare challenge page; `unusual…` a 403
"unusual activity"; `429…` model cap (clears_in 3600); `ratelimit…` a bare 429 with Retry-After 42;
`413…` message too long; `500…` a proxy error page; `pow…`, `turnstile…`, `arkose…`, `login…` make the
sentinel demand a challenge; `sentinel404…` / `sentinel502…` fail the sentinel alone; `drop…` cuts the
connection mid-answer; `err…` sends an in-stream error before any text; `empty…` finishes without a word;
`handoff…` streams half an answer, then a `stream_handoff` (the rest would come over a WebSocket) and `[DONE]`.

The last user message picks the answer: "reason" (o1-style `a8km123` reasoning), "think" (2025
`thoughts` + `reasoning_recap`), "draw" (a DALL·E tool call, the image, a caption), "imagegen" (4o image
generation: a `sediment://` image with a partial render first), "sandbox" (code interpreter with a
`sandbox:` link), "cite" (citations and content references), "latecite" (the same, with the citation
metadata arriving only after the whole text, as a separate frame), "moderate" (blocked by moderation),
"maxtokens" (cut at max_tokens; `action: continue` finishes it), "endless" (cut every time), "long" (one
word every 20 ms), "capture" (replays the real v1 capture from tests/fixtures). Anything else: `ANSWER`.

Files: `POST /backend-api/files` hands out an upload URL on `localhost` (a different origin, like a blob
store), `PUT` there stores the bytes (`uploads`), `…/uploaded` confirms, `GET /backend-api/files/{id}` is
"pending" once before "success"; the three download endpoints answer with `download_url`s on `/blob/…`.
`/public/…` serves files for clients to link to (`fox.png`, `notes.pdf`, `big.bin`, and `redirect?to=`).

Requests with `supported_encodings: ["v1"]` get delta frames, others legacy frames; `force_legacy` on the
server overrides that. `calls` counts conversation requests per access token; `requests` records every
request (path, kind, token, lower-cased headers, JSON body, and the framing served).
Run it alone with `python -m tests.fakes.chatgpt_server --port 9001`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.base import FakeServer

ANSWER = "Hello from the fake ChatGPT, one word at a time."
REASONING = "**Checking arithmetic**\n\nThe user asks 6*7."
THOUGHT = "The user wants a number; 6 times 7 is 42."
CAPTION = "Here is your red fox."
CUT, REST = "This answer was cut", " short, and here is the rest."
SANDBOX_TEXT = "Done. [Download the table](sandbox:/mnt/data/table.csv) when you like."
SANDBOX_FILE = b"n,square\n1,1\n2,4\n"
CITED = "The sky is blue\u301011\u2020source\u3011 and grass is green \ue200cite\ue202turn0search0\ue201."
SKY = {"url": "https://example.com/sky", "title": "Why the sky is blue"}
GRASS_ALT = "([Plants](https://example.org/grass))"
REASONED = "6 \u00d7 7 = 42."  # non-ASCII on purpose
SENTINEL_TOKEN = "fake-req-token"
CONVERSATION_ID = "c0ffee00-0000-4000-8000-000000000001"
CAPTURE = (
    Path(__file__).resolve().parent.parent / "fixtures" / "2026-03-22_f-conversation_delta-encoding-v1_gpt-5-3_team.sse"
)
SCENARIOS = ("401", "403", "unusual", "429", "ratelimit", "413", "500", "pow", "turnstile", "arkose", "login")
SCENARIOS += ("drop", "err", "empty", "handoff", "sentinel404", "sentinel502")
HANDOFF = {"type": "stream_handoff", "options": [{"type": "subscribe_ws_topic", "topic_id": "conversation-turn-1"}]}
KEYWORDS = ("reason", "think", "imagegen", "draw", "sandbox", "latecite", "cite", "moderate", "maxtokens", "endless")
KEYWORDS += ("long", "capture")
CLOUDFLARE_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
    '<div class="cf-spinner-please-wait">Checking your browser</div>'
    "<script>window._cf_chl_opt={cvId: '3', cZone: 'chatgpt.com', cType: 'managed'};</script></body></html>"
)
TEXT_PATHS = {
    "text": "/message/content/parts/0",
    "execution_output": "/message/content/text",
    "code": "/message/content/text",
    "thoughts": "/message/content/thoughts/0/content",
    "reasoning_recap": "/message/content/content",
}


def png(width: int, height: int) -> bytes:
    """A real (grey) PNG of that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


DALLE_PNG, IMAGEGEN_PNG = png(4, 3), png(5, 2)
PUBLIC = {
    "fox.png": (png(3, 2), "image/png"),
    "notes.pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "application/pdf"),
    "big.bin": (b"\0" * 300_000, "application/octet-stream"),
}


class FakeChatGPT(FakeServer):
    def __init__(self, app: web.Application) -> None:
        super().__init__(app)
        self.force_legacy = False
        self.uploads: dict[str, dict[str, Any]] = {}  # file id → name, use_case, bytes, PUT headers, polls

    def reset(self) -> None:
        super().reset()
        self.force_legacy = False
        self.uploads.clear()


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
    late_metadata: bool = False  # `metadata` only arrives after the last chunk, in a frame of its own
    mid: str = ""  # the message id; m<n> when empty
    unfinished: bool = False  # never finishes here (the rest of the turn went elsewhere)
    pointer: str = ""  # an image message's asset pointer


def words(text: str) -> list[str]:
    parts = text.split(" ")
    return [w + " " for w in parts[:-1]] + [parts[-1]]


def pieces(text: str, size: int = 5) -> list[str]:
    """Small chunks that cut through links and citation marks, as real streams do."""
    return [text[i : i + size] for i in range(0, len(text), size)]


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
    if scenario == "handoff":
        return [Msg("assistant", "text", words(ANSWER)[:3], unfinished=True), HANDOFF]
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
        image = Msg("tool", "image", [], name="dalle.text2im", pointer="file-service://file-AbC123")
        return [call, image, _final(CAPTION)]
    if keyword == "imagegen":
        call = Msg("assistant", "code", ['{"prompt": "a red fox"}'], recipient="t2uay3k.sj1i4kz")
        meta = {"image_gen_title": "Red fox", "async_task_type": "image_gen"}
        image = Msg("tool", "image", ["partial"], name="t2uay3k.sj1i4kz", pointer="sediment://file_00ab", metadata=meta)
        return [call, image]
    if keyword == "sandbox":
        code = Msg("assistant", "code", ["import pandas"], recipient="python")
        output = Msg("tool", "execution_output", ["saved"], name="python")
        return [code, output, Msg("assistant", "text", pieces(SANDBOX_TEXT), end_turn=True, finish="stop", mid="a-sb")]
    if keyword in ("cite", "latecite"):
        citation = {"start_ix": 15, "end_ix": 26, "citation_format_type": "tether_og", "metadata": SKY}
        reference = {"matched_text": "\ue200cite\ue202turn0search0\ue201", "alt": GRASS_ALT, "items": []}
        meta = {"citations": [citation], "content_references": [reference]}
        answer = Msg("assistant", "text", pieces(CITED, 3), end_turn=True, finish="stop", metadata=meta)
        return [replace(answer, late_metadata=keyword == "latecite")]
    if keyword == "moderate":
        verdict = {"flagged": True, "blocked": True, "moderation_id": "modr-1"}
        event = {"type": "moderation", "moderation_response": verdict, "message_id": "m1", "is_completion": True}
        return [_final("Something the moderator will dislike."), event]
    if keyword in ("maxtokens", "endless"):
        return [cut(f"cut-{keyword}-1")]
    if keyword == "long":
        final.chunks = words(" ".join(["word"] * 30))
    return [final]


def cut(mid: str, text: str = CUT) -> Msg:
    return Msg("assistant", "text", words(text), end_turn=False, finish="max_tokens", mid=mid)


def continued(parent: str) -> list[Msg | dict]:
    """The turn that continues the cut message `parent`: cut again when endless, else the rest."""
    keyword, n = parent.split("-")[1], int(parent.split("-")[2])
    if keyword == "endless":
        return [cut(f"cut-endless-{n + 1}", f", cut again ({n})")]
    return [Msg("assistant", "text", words(REST), end_turn=True, finish="stop", metadata={"message_type": "continue"})]


def _final(text: str, channel: str | None = None) -> Msg:
    return Msg("assistant", "text", words(text), channel=channel, end_turn=True, finish="stop", patch_style=True)


# --- Message snapshots ----------------------------------------------------------------------------
def content(kind: str, text: str, pointer: str = "", done: bool = True) -> dict[str, Any]:
    if kind == "code":
        return {"content_type": "code", "language": "json", "text": text}
    if kind == "thoughts":
        thought = {"summary": "Thinking it over", "content": text, "chunks": [], "finished": False}
        return {"content_type": "thoughts", "thoughts": [thought], "source_analysis_msg_id": "x"}
    if kind == "reasoning_recap":
        return {"content_type": "reasoning_recap", "content": text}
    if kind == "execution_output":
        return {"content_type": "execution_output", "text": text}
    if kind == "image":  # while in progress, a partial render: generation.height below the final height
        meta = {"dalle": {"gen_id": "g1", "prompt": "a red fox, watercolor" if "file-service" in pointer else ""}}
        meta["generation"] = {"gen_id": "g1", "width": 1024, "height": 1024 if done else 256}
        part = {"content_type": "image_asset_pointer", "asset_pointer": pointer, "size_bytes": 3, "metadata": meta}
        return {"content_type": "multimodal_text", "parts": [{**part, "width": 1024, "height": 1024}]}
    return {"content_type": "text", "parts": [text]}


def message(msg: Msg, mid: str, text: str, done: bool, slug: str) -> dict[str, Any]:
    extra = {} if msg.late_metadata and not done else msg.metadata
    metadata: dict[str, Any] = {"model_slug": slug, "default_model_slug": "auto", **extra}
    if done and msg.finish:
        metadata |= {"finish_details": {"type": msg.finish, "stop_tokens": [200002]}, "is_complete": True}
    return {
        "id": mid,
        "author": {"role": msg.role, "name": msg.name, "metadata": {}},
        "create_time": 1739594200.4,
        "update_time": None,
        "content": content(msg.kind, text, msg.pointer, done or not msg.chunks),
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
        text, mid = "", item.mid or f"m{n}"
        yield frame(root(message(item, mid, "", False, slug)))
        for chunk in item.chunks:
            text += chunk
            yield frame(root(message(item, mid, text, False, slug)))
        if item.late_metadata:
            yield frame(root(message(replace(item, late_metadata=False), mid, text, False, slug)))
        if not item.unfinished:
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
    start = root(message(msg, msg.mid or f"m{n}", "", False, slug))
    # The first root says p/o explicitly; later ones omit them, as recent captures do.
    yield frame({"p": "", "o": "add", "v": start, "c": n} if n == 0 else {"v": start, "c": n}, "delta")
    path = TEXT_PATHS.get(msg.kind, "")
    for i, chunk in enumerate(msg.chunks if path else ()):
        if msg.patch_style:
            op = {"v": [{"p": path, "o": "append", "v": chunk}]}
            yield frame({"p": "", "o": "patch", **op} if i == 0 else op, "delta")
        else:
            yield frame({"p": path, "o": "append", "v": chunk} if i == 0 else {"v": chunk}, "delta")
    if msg.late_metadata:
        yield frame({"p": "/message/metadata", "o": "append", "v": msg.metadata}, "delta")
    if not msg.unfinished:
        yield frame({"p": "", "o": "patch", "v": closing_ops(msg)}, "delta")


def closing_ops(msg: Msg) -> list[dict[str, Any]]:
    ops = [{"p": "/message/status", "o": "replace", "v": "finished_successfully"}]
    if msg.kind == "image":
        ops.append({"p": "/message/content", "o": "replace", "v": content("image", "", msg.pointer)})
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
        return sentinel_error(scenario)
    if scenario == "429":
        cap = "You've reached the current usage cap for GPT-4o, please try again after 3:14 PM."
        return json_error(429, {"code": "model_cap_exceeded", "clears_in": 3600, "message": cap})
    if scenario == "ratelimit":
        return web.Response(status=429, text="Too Many Requests", headers={"Retry-After": "42"})
    if scenario == "413":
        return json_error(413, "Message too long. Please shorten it and try again.")
    return None


def sentinel_error(scenario: str) -> web.Response | None:
    if scenario == "sentinel404":  # as a moved sentinel path answers
        return json_error(404, "Not Found")
    if scenario == "sentinel502":
        return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
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
        is_continue = body.get("action") == "continue"
        turn = continued(body["parent_message_id"]) if is_continue else plan(keyword, scenario)
        yield from v1_frames(turn, slug) if v1 else legacy_frames(turn, slug)
        if not body.get("history_and_training_disabled"):
            yield frame({"type": "title_generation", "title": "Greeting", "conversation_id": CONVERSATION_ID})
        yield from (frame(event) for event in TRAILER if scenario != "handoff")
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
        if body.get("action") == "continue" and not valid_continue(body):
            return json_error(404, "Conversation not found")
        legacy = bool(server_ref and server_ref[0].force_legacy)
        entry["encoding"] = "v1" if "v1" in (body.get("supported_encodings") or []) and not legacy else "legacy"
        return await stream(request, list(frames_for(body, scenario, entry["encoding"] == "v1")), scenario, body)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    for base in ("/backend-api", "/backend-anon"):
        app.router.add_post(base + "/sentinel/chat-requirements", sentinel)
        app.router.add_post(base + "/conversation", conversation)
        app.router.add_get(base + "/models", models)
    app.router.add_get("/backend-api/accounts/check/v4-2023-04-27", accounts)
    app.router.add_get("/", home)
    add_file_routes(app, server_ref, record)
    return app


def valid_continue(body: dict[str, Any]) -> bool:
    parent = str(body.get("parent_message_id") or "")
    return body.get("conversation_id") == CONVERSATION_ID and parent.startswith("cut-") and "messages" not in body


# --- Files ----------------------------------------------------------------------------------------
def add_file_routes(app: web.Application, server_ref: list[FakeChatGPT] | None, record: Any) -> None:
    numbers = itertools.count(1)

    def uploads() -> dict[str, dict[str, Any]]:
        return server_ref[0].uploads if server_ref else {}

    def blob_url(request: web.Request, name: str) -> str:
        return f"http://localhost:{request.url.port}/blob/{name}"

    def authorized(request: web.Request) -> bool:
        return request.headers.get("Authorization", "").startswith("Bearer ")

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        record(request, body, "file-create")
        file_id = f"file-{next(numbers)}"
        uploads()[file_id] = {"name": body["file_name"], "use_case": body["use_case"], "size": body["file_size"]}
        return web.json_response({"status": "success", "file_id": file_id, "upload_url": blob_url(request, file_id)})

    async def put(request: web.Request) -> web.Response:
        entry = uploads().get(request.match_info["name"])
        if entry is None:
            return web.Response(status=404)
        entry |= {"data": await request.read(), "headers": {k.lower(): v for k, v in request.headers.items()}}
        return web.Response(status=201)

    async def uploaded(request: web.Request) -> web.Response:
        record(request, await request.json(), "file-uploaded")
        file_id = request.match_info["file_id"]
        if "data" not in uploads().get(file_id, {}):
            return json_error(404, "File not found")
        return web.json_response({"status": "success", "download_url": blob_url(request, file_id)})

    async def status(request: web.Request) -> web.Response:
        record(request, None, "file-status")
        entry = uploads().get(request.match_info["file_id"])
        if entry is None:
            return json_error(404, "File not found")
        entry["polls"] = entry.get("polls", 0) + 1
        indexed = "success" if entry["polls"] > 1 else "pending"
        return web.json_response({"retrieval_index_status": indexed, "file_size_tokens": 12})

    async def download(request: web.Request) -> web.Response:
        record(request, dict(request.query), "download")
        if not authorized(request):
            return json_error(401, "Unauthorized")
        info = request.match_info
        if "sandbox_path" in request.query:
            ok = request.query.get("message_id") == "a-sb" and request.query["sandbox_path"] == "/mnt/data/table.csv"
            name, file_name = "table.csv", "table.csv"
        else:
            ok = info["file_id"] in ("file-AbC123", "file_00ab")
            name, file_name = info["file_id"], "image.png"
        if not ok or info.get("cid", CONVERSATION_ID) != CONVERSATION_ID:
            return json_error(404, "File not found")
        return web.json_response({"status": "success", "download_url": blob_url(request, name), "file_name": file_name})

    async def blob(request: web.Request) -> web.Response:
        record(request, None, "blob")
        name = request.match_info["name"]
        stored = {"file-AbC123": DALLE_PNG, "file_00ab": IMAGEGEN_PNG, "table.csv": SANDBOX_FILE}
        if name in uploads() and "data" in uploads()[name]:
            return web.Response(body=uploads()[name]["data"], content_type="application/octet-stream")
        if name not in stored:
            return web.Response(status=404)
        return web.Response(body=stored[name], content_type="text/csv" if name.endswith(".csv") else "image/png")

    async def public(request: web.Request) -> web.Response:
        record(request, None, "public")
        name = request.match_info["name"]
        if name == "redirect":
            raise web.HTTPFound(request.query.get("to", "/public/fox.png"))
        if name not in PUBLIC:
            return web.Response(status=404)
        data, kind = PUBLIC[name]
        return web.Response(body=data, content_type=kind)

    app.router.add_post("/backend-api/files", create)
    app.router.add_post("/backend-api/files/{file_id}/uploaded", uploaded)
    app.router.add_get("/backend-api/files/{file_id}", status)
    app.router.add_get("/backend-api/files/{file_id}/download", download)
    app.router.add_get("/backend-api/conversation/{cid}/attachment/{file_id}/download", download)
    app.router.add_get("/backend-api/conversation/{cid}/interpreter/download", download)
    app.router.add_put("/blob/{name}", put)
    app.router.add_get("/blob/{name}", blob)
    app.router.add_get("/public/{name}", public)


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
    return FakeChatGPT.launch(make_app)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)
