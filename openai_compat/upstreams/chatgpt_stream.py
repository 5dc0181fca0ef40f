"""A pure parser of the ChatGPT web backend's answer stream, in both framings.

Feed `ChatGPTStream.feed` the payload of each SSE `data:` line; it returns the `Delta`s that payload
produces. Legacy frames carry whole message snapshots (cumulative text); delta encoding "v1" carries
JSON-pointer operations on one root document per channel. Either way the parser keeps the current
messages and emits only what each visible message gained since the last payload.

Generated images, code-interpreter files (`sandbox:` links) and citations become Markdown; where a file
link points is up to the `link` callback (the adapter signs a gateway URL), so the parser stays pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from openai_compat.upstreams.base import Delta
from openai_compat.upstreams.chatgpt_markdown import (
    NO_LINK,
    SANDBOX,
    Asset,
    alt_text,
    asset_of,
    cite,
    has_images,
    hold_back,
)

DONE = "[DONE]"
REASONING_TOOL = "a8km123"  # the tool name under which o1-era models streamed their visible reasoning
SEPARATOR = "\n\n"
REASONING_TYPES = frozenset({"thoughts", "reasoning_recap"})
TEXT_TYPES = frozenset({"text", "multimodal_text"})


class StreamError(Exception):
    """The upstream reported an error inside the stream, or the stream ended before the answer did."""


class ChatGPTStream:
    def __init__(self, link: Callable[[Asset], str] | None = None) -> None:
        self.encoding = "legacy"
        self.roots: dict[Any, Any] = {}  # v1: the document of each channel
        self.done = False
        self.blocked = False  # a moderation event blocked the answer
        self.finish: str | None = None  # set once the final assistant message has finished
        self.handoff = False  # a `stream_handoff` event moved the rest of the turn to a WebSocket
        self.conversation_id = ""
        self.message_id = ""  # the last assistant message: the parent of an `action: continue`
        self.link = link or (lambda asset: "")
        self._links: dict[Asset, str] = {}  # one URL per file, so re-rendered text stays the same
        self._last: dict[str, Any] = {"p": "", "o": "add", "c": 0}  # v1 carry-forward of p, o and c
        self._sent: dict[str, str] = {}  # message id → the text already emitted for it
        self._latest: dict[str, str] = {}  # "content" / "reasoning" → id of the last message that emitted it
        self._glue: str | None = None  # after `resume`: the text the continued answer picks up from
        self._held: dict[str, str] = {}  # message id → its whole text, while `hold_back` keeps some of it
        self._open: set[str] = set()  # visible messages still in progress
        self._pictured = False  # a generated image finished (4o image generation ends the turn on it)

    def resume(self) -> None:
        """Read the stream of an `action: continue`: its text is glued to the answer so far."""
        self.done, self.finish, self.roots, self.handoff = False, None, {}, False
        self._open, self._pictured = set(), False
        self._last = {"p": "", "o": "add", "c": 0}
        last = self._latest.get("content")
        self._glue = self._sent.pop(last, "") if last else None

    def feed(self, payload: bytes | str | dict[str, Any]) -> list[Delta]:
        doc = decode(payload)
        if self.done:
            return []
        if doc == DONE:
            return self.end()
        if doc == "v1":
            self.encoding = "v1"
        if not isinstance(doc, dict):
            return []
        if is_delta(doc):
            return self._apply(doc)
        if "type" in doc and "message" not in doc:
            return self._side_event(doc)
        return self._snapshot(doc, "")

    @property
    def complete(self) -> bool:
        """The final assistant message finished, moderation blocked the answer, or the turn ended on a
        finished generated image (4o image generation sends no closing message) with nothing left open."""
        return self.finish is not None or self.blocked or (self._pictured and not self._open)

    def end(self) -> list[Delta]:
        """The stream is over (`[DONE]` or the last byte): the finish delta if the answer is complete, else
        `StreamError`: a cut or handed-off answer is never passed off as a finished one."""
        if self.done:
            return []
        if self.complete:
            return self._close()
        if self.handoff:
            raise StreamError("ChatGPT moved the answer to a WebSocket (stream_handoff), which chat2api does not read.")
        raise StreamError("The upstream ended the stream before the answer was complete.")

    def _close(self) -> list[Delta]:
        """The finish delta, after whatever was still held back: at the end, text is shown as it is."""
        self.done = True
        held, self._held = self._held, {}
        flushed = [] if self.blocked else [d for i, text in held.items() for d in self._increment(i, "content", text)]
        return [*flushed, Delta(finish_reason="content_filter" if self.blocked else self.finish or "stop")]

    def _apply(self, doc: dict[str, Any]) -> list[Delta]:
        channel = doc.get("c", self._last["c"])
        if ("p" not in doc and "o" not in doc and is_root(doc.get("v"))) or channel not in self.roots:
            path, op = "", "add"  # a new root: later captures omit p and o on these
        else:
            path, op = doc.get("p", self._last["p"]), doc.get("o", self._last["o"])
        self._last = {"p": path, "o": op, "c": channel}
        self.roots[channel] = apply_op(self.roots.get(channel), path, op, doc.get("v"))
        root = self.roots[channel]
        return self._snapshot(root, f"#{channel}") if isinstance(root, dict) else []

    def _snapshot(self, root: dict[str, Any], fallback_id: str) -> list[Delta]:
        if root.get("error"):
            raise StreamError(error_text(root["error"]))
        self._note_conversation(root)
        message = root.get("message")
        return self._observe(message, fallback_id) if isinstance(message, dict) else []

    def _note_conversation(self, doc: dict[str, Any]) -> None:
        if isinstance(doc.get("conversation_id"), str) and doc["conversation_id"]:
            self.conversation_id = doc["conversation_id"]

    def _side_event(self, doc: dict[str, Any]) -> list[Delta]:
        self._note_conversation(doc)
        verdict = doc.get("moderation_response")
        if doc["type"] == "moderation" and isinstance(verdict, dict) and verdict.get("blocked"):
            self.blocked = True
        self.handoff = self.handoff or doc["type"] == "stream_handoff"
        return []

    def _observe(self, message: dict[str, Any], fallback_id: str) -> list[Delta]:
        message_id = str(message.get("id") or fallback_id)
        if (message.get("author") or {}).get("role") == "assistant" and message.get("id"):
            self.message_id = message_id
        if is_final(message):
            self.finish = "length" if finish_type(message) == "max_tokens" else "stop"
        kind = kind_of(message)
        if kind in ("content", "media"):
            self._track(message, message_id, kind)
        if kind is None or (self.blocked and kind != "reasoning"):
            return []
        if kind == "reasoning":
            return self._increment(message_id, kind, text_of_message(message))
        text = self._media(message, message_id) if kind == "media" else self._render(message, message_id)
        return self._increment(message_id, "content", text)

    def _track(self, message: dict[str, Any], message_id: str, kind: str) -> None:
        if message.get("status") == "in_progress":
            self._open.add(message_id)
        else:
            self._open.discard(message_id)
            self._pictured = self._pictured or kind == "media"

    def _increment(self, message_id: str, kind: str, text: str) -> list[Delta]:
        sent = self._sent.get(message_id, "")
        glued = kind == "content" and self._glue is not None and not sent
        if glued and self._glue and text.startswith(self._glue):
            sent = self._glue  # the continuation repeats the text so far: only what follows is new
        self._sent[message_id] = text
        if not text.startswith(sent) or text == sent:
            return []  # nothing new, or rewritten: what was sent cannot be taken back
        piece = text[len(sent) :]
        if not sent and not glued and self._latest.get(kind, message_id) != message_id:
            piece = SEPARATOR + piece
        self._latest[kind] = message_id
        if glued:
            self._glue = None
        return [Delta(content=piece) if kind == "content" else Delta(reasoning=piece)]

    # --- Text with links ----------------------------------------------------------------------------
    def _asset_url(self, asset: Asset) -> str:
        if asset not in self._links:
            self._links[asset] = self.link(asset)
        return self._links[asset]

    def _render(self, message: dict[str, Any], message_id: str) -> str:
        """The message's text with citations and `sandbox:` links made Markdown; unfinished links held back."""
        text = cite(text_of_message(message), (message.get("metadata") or {}))

        def sandbox(match: re.Match[str]) -> str:
            url = self._asset_url(Asset("sandbox", match.group(1), self.conversation_id, message_id))
            return f"({url})" if url else match.group(0)

        text = SANDBOX.sub(sandbox, text)
        shown = hold_back(text) if message.get("status") == "in_progress" else text
        if shown != text:
            self._held[message_id] = text
        else:
            self._held.pop(message_id, None)
        return shown

    def _media(self, message: dict[str, Any], message_id: str) -> str:
        """Images as Markdown once the message is finished (in-progress snapshots are partial renders)."""
        if message.get("status") == "in_progress":
            return ""
        pieces = []
        for part in (message.get("content") or {}).get("parts") or ():
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict) and (asset := asset_of(part, self.conversation_id, message_id)):
                url = self._asset_url(asset)
                pieces.append(f"![{alt_text(part, message)}]({url})" if url else NO_LINK)
        return SEPARATOR.join(p for p in pieces if p)


def decode(payload: bytes | str | dict[str, Any]) -> Any:
    """The JSON document of one `data:` payload; `DONE` for the terminator, None for anything unreadable."""
    if isinstance(payload, dict):
        return payload
    raw = payload.strip() if isinstance(payload, bytes) else payload.strip().encode()
    if raw == b"[DONE]":
        return DONE
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # keep-alives and junk are not worth failing an answer for


def is_delta(doc: dict[str, Any]) -> bool:
    return ("v" in doc or "o" in doc) and "message" not in doc and "type" not in doc


def is_root(value: Any) -> bool:
    return isinstance(value, dict) and "message" in value


def error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or orjson.dumps(error).decode())
    return str(error)


# --- What a message means -------------------------------------------------------------------------
def kind_of(message: dict[str, Any]) -> str | None:
    """`content` for visible answer text, `reasoning` for visible thinking, `media` for generated images,
    None for anything else."""
    metadata = message.get("metadata") or {}
    if message.get("recipient", "all") != "all" or metadata.get("is_visually_hidden_from_conversation"):
        return None  # a tool call (code, image prompt, browsing command) or a hidden context message
    author = message.get("author") or {}
    content = message.get("content") or {}
    content_type = content.get("content_type")
    if author.get("role") in ("tool", "assistant") and has_images(content):
        return "media"
    if author.get("role") == "tool":
        return "reasoning" if author.get("name") == REASONING_TOOL and content_type == "text" else None
    if author.get("role") != "assistant":
        return None
    if content_type in REASONING_TYPES:
        return "reasoning"
    if content_type in TEXT_TYPES:
        return "reasoning" if message.get("channel") == "analysis" else "content"
    return None


def text_of_message(message: dict[str, Any]) -> str:
    content = message.get("content") or {}
    content_type = content.get("content_type")
    if content_type == "thoughts":
        thoughts = (thought_text(t) for t in content.get("thoughts") or () if isinstance(t, dict))
        return SEPARATOR.join(t for t in thoughts if t)
    if content_type == "reasoning_recap":
        return str(content.get("content") or "")
    return "".join(part for part in content.get("parts") or () if isinstance(part, str))


def thought_text(thought: dict[str, Any]) -> str:
    summary, body = thought.get("summary"), thought.get("content")
    return SEPARATOR.join(str(x) for x in (f"**{summary}**" if summary else "", body) if x)


def is_final(message: dict[str, Any]) -> bool:
    if (message.get("author") or {}).get("role") != "assistant":
        return False
    return message.get("end_turn") is True or finish_type(message) == "max_tokens"


def finish_type(message: dict[str, Any]) -> str | None:
    details = (message.get("metadata") or {}).get("finish_details")
    return details.get("type") if isinstance(details, dict) else None


# --- Delta encoding v1 operations -----------------------------------------------------------------
def apply_op(doc: Any, path: str, op: str, value: Any) -> Any:
    """Apply one v1 operation to `doc` and return the document (a new one when the root is replaced)."""
    if op == "patch":
        # Sub-operation paths are absolute: every capture sends patches at p="" anyway.
        for sub in value if isinstance(value, list) else ():
            if isinstance(sub, dict):
                doc = apply_op(doc, sub.get("p", ""), sub.get("o", "add"), sub.get("v"))
        return doc
    keys = pointer(path)
    if not keys:
        return combine(doc, op, value)
    parent = resolve(doc, keys[:-1])
    edit(parent, keys[-1], op, value)
    return doc


def pointer(path: str) -> list[str]:
    if not path:
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in path.split("/")[1:]]


def resolve(doc: Any, keys: list[str]) -> Any:
    """The container at `keys`; missing objects are created, an impossible path gives a throwaway dict."""
    node = doc
    for key in keys:
        child = child_of(node, key)
        if child is None and isinstance(node, dict):
            child = node[key] = {}
        if not isinstance(child, dict | list):
            return {}
        node = child
    return node


def child_of(node: Any, key: str) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and key.isdigit() and int(key) < len(node):
        return node[int(key)]
    return None


def edit(parent: Any, key: str, op: str, value: Any) -> None:
    if isinstance(parent, list):
        index = len(parent) if key == "-" or not key.isdigit() else int(key)
        if op == "remove":
            del parent[index : index + 1]
        elif op == "add" or index >= len(parent):
            parent.insert(index, value if op == "add" else combine(None, op, value))
        else:
            parent[index] = combine(parent[index], op, value)
    elif isinstance(parent, dict):
        if op == "remove":
            parent.pop(key, None)
        else:
            parent[key] = combine(parent.get(key), op, value)


def combine(current: Any, op: str, value: Any) -> Any:
    """The new value at a path: `append` concatenates strings and lists and merges objects."""
    if op in ("add", "replace"):
        return value
    if op == "remove":
        return None
    if op == "truncate":
        return current[:value] if isinstance(current, str | list) and isinstance(value, int) else current
    if op != "append":
        return current  # an operation we do not know leaves the value alone
    if current is None:
        return value
    if isinstance(current, str):
        return current + (value if isinstance(value, str) else str(value))
    if isinstance(current, list):
        return current + (value if isinstance(value, list) else [value])
    if isinstance(current, dict) and isinstance(value, dict):
        return {**current, **value}
    return value
