"""A Chat Completions or Responses API request as the body of the Codex backend's `POST /responses` (A2, A5).

The body is built from an allow-list, so the fields the backend refuses (`temperature`, `top_p`, the
max-token fields, penalties) are never sent. The backend also demands `store: false`, `stream: true`, a
string `instructions` and `input` as a list without `system` items (system messages become `developer`).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from openai_compat import fetch
from openai_compat.errors import invalid
from openai_compat.schema import ChatRequest, text_of
from openai_compat.upstreams.base import UpstreamCredential
from openai_compat.upstreams.images import image_info
from openai_compat.upstreams.responses_events import replayable, with_encrypted_reasoning

CACHE_NAMESPACE = uuid.UUID("0b6f6a52-7d0e-4c44-9a77-5d1f3c0e2b19")
ROLE = {"system": "developer", "developer": "developer", "user": "user"}


async def codex_body(request: ChatRequest, slug: str, cred: UpstreamCredential) -> dict[str, Any]:
    body = request.body
    effort = body.get("reasoning_effort")
    return _envelope(
        slug,
        input=[item for i, m in enumerate(request.messages) for item in await _items(i, m)],
        tools=[_tool(t) for t in body.get("tools") or ()]
        + [_tool({"type": "function", "function": f}) for f in body.get("functions") or ()],
        tool_choice=_tool_choice(body.get("tool_choice") or body.get("function_call") or "auto"),
        parallel_tool_calls=body.get("parallel_tool_calls", True),
        prompt_cache_key=cache_key(request, cred),
        reasoning={"effort": effort, "summary": "auto"} if effort else None,
        text=_text(body),
    )


async def native_body(request: ChatRequest, slug: str, cred: UpstreamCredential) -> dict[str, Any]:
    """A Responses API request (`request.native`) under the same rules: its own items, minus what the backend
    cannot use (our ids, references, reasoning it cannot decrypt); only function tools, since the answer side
    relays only function calls."""
    native = request.native or {}
    items = [replayable(item) for item in native.get("input") or ()]
    return _envelope(
        slug,
        instructions=native.get("instructions") or "",
        input=[await _native_item(i, item) for i, item in enumerate(items) if item is not None],
        tools=[t for t in native.get("tools") or () if t.get("type") == "function"],
        tool_choice=_native_choice(native.get("tool_choice") or "auto"),
        parallel_tool_calls=native.get("parallel_tool_calls") is not False,
        prompt_cache_key=native.get("prompt_cache_key") or cache_key(request, cred),
        reasoning=native.get("reasoning"),
        text=native.get("text"),
        include=native.get("include") or [],
    )


def _envelope(
    slug: str,
    *,
    reasoning: dict[str, Any] | None,
    text: dict[str, Any] | None,
    include: list[str] | None = None,
    instructions: str = "",
    **fields: Any,
) -> dict[str, Any]:
    """The allow-listed fields and what the backend demands of every body."""
    out = {"model": slug, "instructions": instructions, **fields, "store": False, "stream": True}
    out["include"] = with_encrypted_reasoning(include or [], reasoning)
    if reasoning:
        out["reasoning"] = reasoning
    if text:
        out["text"] = text
    return out


def cache_key(request: ChatRequest, cred: UpstreamCredential) -> str:
    """Stable for one conversation on one account: the client's own key, else the account, the caller's
    `user` and the conversation's opening (its first user message), so every turn hits the same cache."""
    if own := request.body.get("prompt_cache_key"):
        return own
    first = next((m for m in request.messages if m.get("role") == "user"), {})
    opening = text_of(first.get("content"))
    digest = hashlib.sha256(f"{cred.account_id}\0{request.body.get('user', '')}\0{opening}".encode()).hexdigest()
    return str(uuid.uuid5(CACHE_NAMESPACE, digest))


async def _items(i: int, message: dict[str, Any]) -> list[dict[str, Any]]:
    role, content = message["role"], message.get("content")
    if role == "tool":
        return [{"type": "function_call_output", "call_id": message["tool_call_id"], "output": text_of(content)}]
    if role == "assistant":
        return _assistant(message)
    if role == "function":  # the deprecated form: no call id exists, so the function's name stands in
        return [{"type": "function_call_output", "call_id": message["name"], "output": content or ""}]
    parts = (
        [await _part(p, f"messages[{i}].content[{j}]") for j, p in enumerate(content)]
        if isinstance(content, list)
        else [{"type": "input_text", "text": content}]
    )
    return [{"type": "message", "role": ROLE[role], "content": parts}]


def _assistant(message: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    text = text_of(message.get("content")) or message.get("refusal") or ""
    if text:
        items.append({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]})
    for call in message.get("tool_calls") or ():
        if call["type"] == "custom":
            items.append({"type": "custom_tool_call", "call_id": call["id"], **call["custom"]})
        else:
            function = call["function"]
            items.append({"type": "function_call", "call_id": call["id"], **function})
    if legacy := message.get("function_call"):
        items.append({"type": "function_call", "call_id": legacy["name"], **legacy})
    return items


async def _part(part: dict[str, Any], param: str) -> dict[str, Any]:
    kind = part["type"]
    if kind == "text":
        return {"type": "input_text", "text": part["text"]}
    if kind == "image_url":
        ref = part["image_url"]
        return {"type": "input_image", "image_url": await image_url(ref["url"], param + ".image_url.url")} | (
            {"detail": ref["detail"]} if "detail" in ref else {}
        )
    if kind == "file" and "file_data" in part["file"]:
        file = part["file"]
        return {"type": "input_file", "file_data": file["file_data"], "filename": file.get("filename") or "file"}
    raise invalid(param, f"{param} ({kind}) cannot be sent to a Codex account; send text, images or file_data.")


async def _native_item(i: int, item: dict[str, Any]) -> dict[str, Any]:
    """System messages become `developer`; http(s) images are fetched here, as for chat requests."""
    if item.get("role") in ROLE:
        item = {**item, "role": ROLE[item["role"]]}
    if isinstance(item.get("content"), list):
        item = {
            **item,
            "content": [await _native_part(p, f"input[{i}].content[{j}]") for j, p in enumerate(item["content"])],
        }
    return item


async def _native_part(part: dict[str, Any], param: str) -> dict[str, Any]:
    if part.get("type") == "input_image" and isinstance(part.get("image_url"), str):
        return {**part, "image_url": await image_url(part["image_url"], param + ".image_url")}
    return part


def _native_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    """A named tool of a kind that is not sent (custom, web_search, …) cannot be forced: the model chooses."""
    return choice if isinstance(choice, str) or choice.get("type") == "function" else "auto"


async def image_url(url: str, param: str) -> str:
    """A data URL as it is; an http(s) URL fetched here (through the SSRF-safe fetcher) into a data URL,
    since the backend is not to reach into whatever network a client names."""
    if url.startswith("data:"):
        return url
    try:
        got = await fetch.fetch(url)
    except fetch.FetchError as exc:
        raise invalid(param, f"The URL in {param} was not fetched: {exc}.", code="invalid_url") from None
    info = image_info(got.data)
    if info is None:
        raise invalid(param, f"{param} is not a PNG, JPEG, GIF or WebP image.", code="invalid_image")
    return f"data:{info[0]};base64,{base64.b64encode(got.data).decode()}"


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Chat's nested `{type, function: {…}}` is flat in the Responses shape."""
    return {"type": tool["type"], **tool[tool["type"]]}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    if choice.get("type") == "allowed_tools":
        allowed = choice["allowed_tools"]
        return {"type": "allowed_tools", "mode": allowed["mode"], "tools": [_named(t) for t in allowed["tools"]]}
    return _named(choice)


def _named(ref: dict[str, Any]) -> dict[str, Any]:
    kind = ref.get("type", "function")
    return {"type": kind, "name": (ref.get(kind) or {}).get("name", ref.get("name", ""))}


def _text(body: dict[str, Any]) -> dict[str, Any]:
    text: dict[str, Any] = {}
    if verbosity := body.get("verbosity"):
        text["verbosity"] = verbosity
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        text["format"] = {"type": "json_schema", **response_format["json_schema"]}
    elif response_format.get("type") == "json_object":
        text["format"] = {"type": "json_object"}
    return text
