"""Pure helpers that turn what a ChatGPT message refers to (images, files, sources) into Markdown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

POINTERS = {"file-service://": "file", "sediment://": "sediment"}
SANDBOX = re.compile(r"\(sandbox:(/mnt/data/[^)\s]*)\)")
# A construct that may still be growing is held back until it is whole: a citation mark, a file link.
UNCLOSED = (("\u3010", "\u3011"), ("\ue200", "\ue201"), ("(sandbox:", ")"))
# A whole citation mark still in the text after `cite` has no metadata yet: it is held until the metadata
# arrives or the message ends (then it is shown as it is), so a raw mark never reaches the client early.
MARK = re.compile(r"\u3010\d+(?::\d+)?\u2020[^\u3010\u3011]*\u3011|\ue200[^\ue200\ue201]*\ue201")
NO_LINK = "*(generated file: downloading it needs chat history enabled)*"


@dataclass(frozen=True, slots=True)
class Asset:
    """A file the answer refers to: `file` (file-service://), `sediment` (4o images) or `sandbox` (code output)."""

    kind: str
    id: str  # the file id, or the sandbox path
    conversation_id: str = ""
    message_id: str = ""


def has_images(content: dict[str, Any]) -> bool:
    parts = content.get("parts") if content.get("content_type") == "multimodal_text" else None
    return any(isinstance(p, dict) and p.get("content_type") == "image_asset_pointer" for p in parts or ())


def asset_of(part: dict[str, Any], conversation_id: str, message_id: str) -> Asset | None:
    pointer = part.get("asset_pointer")
    for scheme, kind in POINTERS.items():
        if isinstance(pointer, str) and pointer.startswith(scheme) and len(pointer) > len(scheme):
            return Asset(kind, pointer[len(scheme) :], conversation_id, message_id)
    return None


def alt_text(part: dict[str, Any], message: dict[str, Any]) -> str:
    dalle = (part.get("metadata") or {}).get("dalle") or {}
    text = dalle.get("prompt") or (message.get("metadata") or {}).get("image_gen_title") or "image"
    return " ".join(re.sub(r"[\[\]()]", "", str(text)).split())[:120] or "image"


def cite(text: str, metadata: dict[str, Any]) -> str:
    """Citation marks replaced by Markdown links: `citations` by offset, `content_references` by text."""
    end = len(text)
    for item in sorted(spans(metadata.get("citations"), end), key=lambda c: c["start_ix"], reverse=True):
        if item["end_ix"] <= end:
            source = item.get("metadata") or {}
            text = text[: item["start_ix"]] + source_link(source) + text[item["end_ix"] :]
            end = item["start_ix"]
    for ref in metadata.get("content_references") or ():
        if isinstance(ref, dict) and isinstance(ref.get("matched_text"), str) and ref["matched_text"].strip():
            items = [i for i in ref.get("items") or () if isinstance(i, dict)]
            alt = ref.get("alt") if isinstance(ref.get("alt"), str) else None
            text = text.replace(ref["matched_text"], alt or (source_link(items[0]) if items else ""), 1)
    return text


def spans(citations: Any, length: int) -> list[dict[str, Any]]:
    def valid(c: Any) -> bool:
        start, end = (c.get("start_ix"), c.get("end_ix")) if isinstance(c, dict) else (None, None)
        return isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= length

    return [c for c in citations or () if valid(c)]


def source_link(source: dict[str, Any]) -> str:
    url = source.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return ""
    title = " ".join(re.sub(r"[\[\]]", "", str(source.get("title") or source.get("attribution") or url)).split())
    return f" ([{title}]({url.replace(')', '%29').replace(' ', '%20')}))"


def hold_back(text: str) -> str:
    """`text` without a trailing construct that is not yet whole (or may be the start of one), nor
    anything from the first citation mark that is still waiting for its metadata."""
    mark = MARK.search(text)
    cut = mark.start() if mark else len(text)
    for opener, closer in UNCLOSED:
        start = text.rfind(opener)
        if start >= 0 and closer not in text[start:]:
            cut = min(cut, start)
        partial = next((k for k in range(len(opener) - 1, 0, -1) if text.endswith(opener[:k])), 0)
        cut = min(cut, len(text) - partial)
    return text[:cut]
