"""Files in and out of a ChatGPT conversation (protocol §3.6).

In: `image_url` and `file` parts (and, with `UPLOAD_BY_URL`, URLs leading a user message) are fetched
once per attempt, uploaded in three steps (create, PUT the bytes, confirm) and attached to the message.
Out: images, code-interpreter files and the like are downloaded fresh with the right credential when a
client follows their signed gateway link (signed and served by `openai_compat.files`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Literal, Protocol
from urllib.parse import quote, unquote, unquote_to_bytes, urlencode, urljoin, urlsplit
from zoneinfo import ZoneInfo

from curl_cffi.requests import Response
from curl_cffi.requests.exceptions import RequestException
from django.conf import settings

from common.http import proxy_for, session_for
from openai_compat import fetch
from openai_compat.errors import invalid
from openai_compat.schema import text_of
from openai_compat.upstreams.base import UpstreamCredential, UpstreamError
from openai_compat.upstreams.chatgpt_markdown import Asset
from openai_compat.upstreams.images import image_info
from openai_compat.upstreams.transport import close_stream, transport_reason

log = logging.getLogger(__name__)

LEADING_URL = re.compile(r"\s*(https?://\S+)(?:\s+|$)")
# Documents that ChatGPT indexes for retrieval (`my_files`); other files go to the code interpreter.
RETRIEVAL = frozenset(
    {".pdf", ".doc", ".docx", ".txt", ".md", ".markdown", ".rtf", ".html", ".htm", ".json", ".xml", ".pptx"}
    | {".tex", ".py", ".js", ".ts", ".java", ".c", ".cpp", ".h", ".cs", ".go", ".rb", ".php", ".sh", ".rs"}
    | {".swift", ".kt", ".css", ".sql", ".yaml", ".yml"}
)
INDEX_WAIT_SECONDS = 30.0
Method = Literal["GET", "POST"]  # what the file calls use of the backend API


class Backend(Protocol):
    """The backend API as one credential sees it: `chatgpt_web.Backend`, which imports this module."""

    @property
    def cred(self) -> UpstreamCredential: ...
    @property
    def api(self) -> str: ...
    @property
    def headers(self) -> dict[str, str]: ...

    async def json(self, method: Method, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    name: str
    mime: str
    size: tuple[int, int] | None = None  # width and height, for an image whose header could be read

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/")


@dataclass(frozen=True, slots=True)
class Prepared:
    """One OpenAI message with its files in hand, ready to be uploaded and sent."""

    role: str
    text: str
    blobs: tuple[Blob, ...] = ()


# --- In: collect the files a request carries -----------------------------------------------------
async def prepare(messages: list[dict[str, Any]]) -> list[Prepared]:
    """The messages with their files fetched or decoded; `APIError` 400 naming the part that failed."""
    return [await _prepare(i, m) for i, m in enumerate(messages)]


async def _prepare(i: int, message: dict[str, Any]) -> Prepared:
    content = message.get("content")
    text, blobs = text_of(content), []
    for j, part in enumerate(content if isinstance(content, list) else ()):
        if isinstance(part, dict) and part.get("type") == "image_url":
            blobs.append(await _image(part.get("image_url"), f"messages[{i}].content[{j}].image_url"))
        elif isinstance(part, dict) and part.get("type") == "file":
            blobs.append(_file(part.get("file"), f"messages[{i}].content[{j}].file"))
    if settings.UPLOAD_BY_URL and message.get("role") == "user":
        urls, text = leading_urls(text)
        blobs += [await _from_url(url, f"messages[{i}].content") for url in urls]
    return Prepared(message["role"], text, tuple(blobs))


def leading_urls(text: str) -> tuple[list[str], str]:
    """The URLs that open `text` (separated by spaces), and the text after them."""
    urls = []
    while match := LEADING_URL.match(text):
        urls.append(match.group(1))
        text = text[match.end() :]
    return urls, text


async def _image(ref: Any, param: str) -> Blob:
    url = ref.get("url") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url:
        raise invalid(param, f"{param} must have a url.")
    blob = await _from_url(url, param, "image")
    if not blob.is_image:
        raise invalid(param, f"{param} is not an image (it is {blob.mime}).", code="invalid_image")
    return blob


def _file(ref: Any, param: str) -> Blob:
    ref = ref if isinstance(ref, dict) else {}
    data, name = ref.get("file_data"), str(ref.get("filename") or "file")
    if not isinstance(data, str) or not data:
        raise invalid(param, f"{param} needs file_data (base64 or a data: URL); file ids are not supported here.")
    if data.startswith("data:"):
        return _data_url(data, param, name)
    try:
        return make_blob(base64.b64decode("".join(data.split()), validate=True), name)
    except ValueError:  # binascii.Error, or a character that is not ASCII
        raise invalid(param, f"{param}.file_data is not valid base64.") from None


async def _from_url(url: str, param: str, name: str = "file") -> Blob:
    if url.startswith("data:"):
        return _data_url(url, param, name)
    try:
        got = await fetch.fetch(url)
    except fetch.FetchError as exc:
        raise invalid(param, f"The URL in {param} was not fetched: {exc}.", code="invalid_url") from None
    name = PurePosixPath(unquote(urlsplit(got.url).path)).name or name
    return make_blob(got.data, name, got.content_type)


def _data_url(url: str, param: str, name: str) -> Blob:
    head, sep, payload = url[5:].partition(",")
    if not sep:
        raise invalid(param, f"{param} is not a valid data: URL.")
    mime, *flags = head.split(";")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True) if "base64" in flags else None
    except ValueError:  # binascii.Error, or a character that is not ASCII
        raise invalid(param, f"{param} is not valid base64.") from None
    return make_blob(unquote_to_bytes(payload) if data is None else data, name, mime.strip().lower())


def make_blob(data: bytes, name: str, declared: str = "") -> Blob:
    """The file's type from its bytes when it is an image, else as declared, else from its name."""
    info = image_info(data)
    if info:
        mime = info[0]
    elif declared and declared not in ("application/octet-stream", "binary/octet-stream"):
        mime = declared
    else:
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if not PurePosixPath(name).suffix:
        name += mimetypes.guess_extension(mime) or ""
    return Blob(data, name, mime, info[1:] if info else None)


# --- In: upload and attach -----------------------------------------------------------------------
def use_case(blob: Blob) -> str:
    if blob.is_image:
        return "multimodal"
    return "my_files" if PurePosixPath(blob.name).suffix.lower() in RETRIEVAL else "ace_upload"


async def upload(backend: Backend, blob: Blob) -> str:
    """Create the file, PUT its bytes, confirm it (and wait for indexing of documents); its file id."""
    case = use_case(blob)
    body = {"file_name": blob.name, "file_size": len(blob.data), "use_case": case, "reset_rate_limits": False}
    created = await backend.json("POST", "/files", {**body, "timezone_offset_min": timezone_offset_min()})
    file_id, upload_url = created.get("file_id"), created.get("upload_url")
    if not isinstance(file_id, str) or not file_id or not isinstance(upload_url, str) or not upload_url:
        raise UpstreamError("ChatGPT did not hand out an upload URL for a file.")
    await _put(backend.cred, urljoin(backend.api, upload_url), blob)
    await backend.json("POST", f"/files/{quote(file_id)}/uploaded", {})
    if case == "my_files":
        await _wait_indexed(backend, file_id)
    return file_id


async def _put(cred: UpstreamCredential, url: str, blob: Blob) -> None:
    # A blob store, not the API: no authorization, device id or language headers.
    headers = {"x-ms-blob-type": "BlockBlob", "x-ms-version": "2020-04-08", "content-type": blob.mime}
    try:
        response = await session_for(url, proxy_for(cred.id)).request("PUT", url, data=blob.data, headers=headers)
    except RequestException as exc:
        raise UpstreamError(transport_reason(exc)) from None
    if response.status_code not in (200, 201):
        raise UpstreamError(f"The file store refused an upload ({response.status_code}).")


async def _wait_indexed(backend: Backend, file_id: str) -> None:
    """Poll until the document is indexed for retrieval; give up quietly after `INDEX_WAIT_SECONDS`."""
    loop, delay = asyncio.get_running_loop(), 0.1
    deadline = loop.time() + INDEX_WAIT_SECONDS
    while True:
        status = (await backend.json("GET", f"/files/{quote(file_id)}")).get("retrieval_index_status")
        if status == "success":
            return
        if status in ("failed", "error") or loop.time() + delay > deadline:
            log.warning("file %s was not indexed for retrieval (%s); it is attached anyway", file_id, status)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def content_of(text: str, files: list[tuple[Blob, str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A message's `content` and `metadata`: images as asset pointers before the text, every file attached."""
    images = [image_part(blob, file_id) for blob, file_id in files if blob.is_image]
    content = {"content_type": "multimodal_text" if images else "text", "parts": [*images, text]}
    attachments = [attachment(blob, file_id) for blob, file_id in files]
    return content, ({"attachments": attachments} if attachments else {})


def image_part(blob: Blob, file_id: str) -> dict[str, Any]:
    part = {"content_type": "image_asset_pointer", "asset_pointer": f"file-service://{file_id}"}
    return {**part, "size_bytes": len(blob.data), **_dimensions(blob)}


def attachment(blob: Blob, file_id: str) -> dict[str, Any]:
    return {"id": file_id, "size": len(blob.data), "name": blob.name, "mime_type": blob.mime, **_dimensions(blob)}


def _dimensions(blob: Blob) -> dict[str, int]:
    return {"width": blob.size[0], "height": blob.size[1]} if blob.size else {}


def timezone_offset_min() -> int:
    offset = datetime.now(ZoneInfo(settings.TIME_ZONE)).utcoffset()
    return -int(offset.total_seconds() // 60) if offset else 0  # the sign of JS getTimezoneOffset


# --- Out: downloads of generated files ------------------------------------------------------------
def download_path(asset: Asset) -> str:
    if asset.kind == "file":
        return f"/files/{quote(asset.id)}/download"
    if asset.kind == "sediment":
        return f"/conversation/{quote(asset.conversation_id)}/attachment/{quote(asset.id)}/download"
    query = urlencode({"message_id": asset.message_id, "sandbox_path": asset.id})
    return f"/conversation/{quote(asset.conversation_id)}/interpreter/download?{query}"


async def open_download(backend: Backend, asset: Asset) -> tuple[Response, str]:
    """The file's bytes as a streaming response (to be closed by the caller), and its name."""
    doc = await backend.json("GET", download_path(asset))
    url = doc.get("download_url")
    if not isinstance(url, str) or not url:
        raise UpstreamError("ChatGPT gave no download URL for this file.")
    url = urljoin(backend.api, url)
    # Credentials go only to the backend's own origin, never to a blob store.
    headers = backend.headers if _origin(url) == _origin(backend.api) else {}
    try:
        response = await session_for(url, proxy_for(backend.cred.id)).request("GET", url, headers=headers, stream=True)
    except RequestException as exc:
        raise UpstreamError(transport_reason(exc)) from None
    if response.status_code != 200:
        await close_stream(response)
        raise UpstreamError(f"The file download answered {response.status_code}.")
    name = doc.get("file_name")
    return response, name if isinstance(name, str) else PurePosixPath(asset.id).name


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc
