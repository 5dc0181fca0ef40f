"""Images and files sent to ChatGPT: fetched or decoded, uploaded in three steps, attached to the message."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator

import httpx
import pytest

from openai_compat.upstreams.chatgpt_files import Blob, leading_urls, make_blob, use_case
from openai_compat.upstreams.images import image_info
from tests import sdk
from tests.factories import chatgpt_account
from tests.fakes import chatgpt_server as fake
from tests.gateway import Gateway, settle
from tests.spec import assert_valid

pytestmark = pytest.mark.django_db(transaction=True)
HTTP = httpx.Client(timeout=30)
PNG = fake.png(4, 3)
FOX = fake.PUBLIC["fox.png"][0]
PDF = fake.PUBLIC["notes.pdf"][0]
CSV = b"a,b\n1,2\n"


@pytest.fixture(scope="module")
def files_gateway(gateway_env) -> Iterator[Gateway]:
    env = {
        **gateway_env,
        "FETCH_ALLOW_PRIVATE": "true",  # the "web" here is the fake on loopback
        "FETCH_MAX_BYTES": "100000",
        "UPLOAD_BY_URL": "true",
    }
    server = Gateway(env).start()
    yield server
    server.stop()


@pytest.fixture
def account(fake_chatgpt) -> None:
    chatgpt_account("at-ok-files")
    settle()


def public(server: fake.FakeChatGPT, name: str, host: str = "localhost") -> str:
    return f"http://{host}:{server.port}/public/{name}"


def send(gateway: Gateway, content: list | str) -> httpx.Response:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    return HTTP.post(gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer test-code"})


def last_message(server: fake.FakeChatGPT) -> dict:
    (conversation,) = [r for r in server.requests if r["kind"] == "conversation"]
    return conversation["body"]["messages"][-1]


def test_images_and_files_are_uploaded_and_attached(files_gateway, fake_chatgpt, account):
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
        {"type": "image_url", "image_url": {"url": public(fake_chatgpt, "fox.png"), "detail": "low"}},
        {"type": "file", "file": {"filename": "notes.pdf", "file_data": "data:application/pdf;base64," + b64(PDF)}},
        {"type": "file", "file": {"filename": "table.csv", "file_data": b64(CSV)}},
    ]
    client = sdk.client(files_gateway.url)
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    assert reply.choices[0].message.content == fake.ANSWER
    created = [r["body"] for r in fake_chatgpt.requests if r["kind"] == "file-create"]
    assert [(c["file_name"], c["use_case"], c["file_size"]) for c in created] == [
        ("image.png", "multimodal", len(PNG)),
        ("fox.png", "multimodal", len(FOX)),
        ("notes.pdf", "my_files", len(PDF)),
        ("table.csv", "ace_upload", len(CSV)),
    ]
    uploads = list(fake_chatgpt.uploads.values())
    assert [u["data"] for u in uploads] == [PNG, FOX, PDF, CSV]
    for upload in uploads:
        headers = upload["headers"]
        assert headers["x-ms-blob-type"] == "BlockBlob" and headers["x-ms-version"] == "2020-04-08"
        assert not {"authorization", "oai-device-id", "oai-language", "chatgpt-account-id"} & set(headers)
    assert [u["headers"]["content-type"] for u in uploads] == ["image/png", "image/png", "application/pdf", "text/csv"]
    assert len([r for r in fake_chatgpt.requests if r["kind"] == "file-uploaded"]) == 4
    assert [u.get("polls", 0) for u in uploads] == [0, 0, 2, 0]  # the document was polled until indexed
    message = last_message(fake_chatgpt)
    assert message["content"]["content_type"] == "multimodal_text"
    first, second, text = message["content"]["parts"]
    assert text == "What is in these?"
    assert first == {
        "content_type": "image_asset_pointer",
        "asset_pointer": "file-service://" + next(iter(fake_chatgpt.uploads)),
        "size_bytes": len(PNG),
        "width": 4,
        "height": 3,
    }
    assert (second["width"], second["height"]) == (3, 2)
    attachments = message["metadata"]["attachments"]
    assert [a["id"] for a in attachments] == list(fake_chatgpt.uploads)
    assert [a["mime_type"] for a in attachments] == ["image/png", "image/png", "application/pdf", "text/csv"]
    assert attachments[2] == {
        "id": attachments[2]["id"],
        "size": len(PDF),
        "name": "notes.pdf",
        "mime_type": "application/pdf",
    }


def test_a_document_alone_is_attached_to_a_text_message(files_gateway, fake_chatgpt, account):
    file = {"type": "file", "file": {"filename": "notes.pdf", "file_data": b64(PDF)}}
    assert send(files_gateway, [{"type": "text", "text": "Summarize"}, file]).status_code == 200
    message = last_message(fake_chatgpt)
    assert message["content"] == {"content_type": "text", "parts": ["Summarize"]}
    assert [a["name"] for a in message["metadata"]["attachments"]] == ["notes.pdf"]


def test_upload_by_url_takes_the_leading_urls(files_gateway, fake_chatgpt, account):
    redirect = public(fake_chatgpt, "redirect", "127.0.0.1") + "?to=/public/notes.pdf"
    response = send(files_gateway, f"{public(fake_chatgpt, 'fox.png')} {redirect}  What are these? http://x.test/")
    assert response.status_code == 200, response.text
    message = last_message(fake_chatgpt)
    assert message["content"]["parts"][-1] == "What are these? http://x.test/"
    assert [a["name"] for a in message["metadata"]["attachments"]] == ["fox.png", "notes.pdf"]
    assert [u["data"] for u in fake_chatgpt.uploads.values()] == [FOX, PDF]


@pytest.mark.parametrize(
    ("content", "param", "reason"),
    [
        ([{"type": "image_url", "image_url": {"url": "{big}"}}], "messages[0].content[0].image_url", "larger than"),
        ([{"type": "image_url", "image_url": {"url": "{pdf}"}}], "messages[0].content[0].image_url", "not an image"),
        ([{"type": "image_url", "image_url": {"url": "{missing}"}}], "messages[0].content[0].image_url", "HTTP 404"),
        (
            [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}],
            "messages[0].content[0].image_url",
            "base64",
        ),
        ([{"type": "file", "file": {"file_id": "file-abc"}}], "messages[0].content[0].file", "file_data"),
        ("{missing} describe it", "messages[0].content", "HTTP 404"),
    ],
)
def test_a_file_that_cannot_be_used_is_a_400_naming_the_part(
    files_gateway, fake_chatgpt, account, content, param, reason
):
    urls = {
        "big": public(fake_chatgpt, "big.bin"),
        "pdf": public(fake_chatgpt, "notes.pdf"),
        "missing": public(fake_chatgpt, "nope.png"),
    }
    filled = fill(content, urls)
    response = send(files_gateway, filled)
    assert response.status_code == 400, response.text
    assert_valid("ErrorResponse", response.json())
    error = response.json()["error"]
    assert error["param"] == param and reason in error["message"]
    assert fake_chatgpt.calls["at-ok-files"] == 0
    assert not [r for r in fake_chatgpt.requests if r["kind"] in ("sentinel", "file-create")]


def fill(content: list | str, urls: dict[str, str]) -> list | str:
    if isinstance(content, str):
        return content.format(**urls)
    return [
        {**p, "image_url": {"url": p["image_url"]["url"].format(**urls)}} if "image_url" in p else p for p in content
    ]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- Pure parts -----------------------------------------------------------------------------------
def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def webp(chunk: bytes, payload: bytes) -> bytes:
    return (
        b"RIFF" + struct.pack("<I", 4 + 8 + len(payload)) + b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    )


LOSSY = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", 640, 480)
LOSSLESS = b"\x2f" + ((300 - 1) | ((200 - 1) << 14)).to_bytes(4, "little")
EXTENDED = b"\x00\x00\x00\x00" + (1920 - 1).to_bytes(3, "little") + (1080 - 1).to_bytes(3, "little")


@pytest.mark.parametrize(
    ("data", "info"),
    [
        (fake.png(4, 3), ("image/png", 4, 3)),
        (b"GIF89a" + struct.pack("<HH", 7, 9) + b"\x00" * 10, ("image/gif", 7, 9)),
        (jpeg(800, 600), ("image/jpeg", 800, 600)),
        (webp(b"VP8 ", LOSSY), ("image/webp", 640, 480)),
        (webp(b"VP8L", LOSSLESS), ("image/webp", 300, 200)),
        (webp(b"VP8X", EXTENDED), ("image/webp", 1920, 1080)),
        (fake.png(4, 3)[:20], None),
        (jpeg(800, 600)[:24], None),
        (b"\x89PNG", None),
        (b"%PDF-1.4", None),
        (b"", None),
    ],
)
def test_image_size_is_read_from_the_header(data: bytes, info: tuple | None):
    assert image_info(data) == info


def test_blob_types_and_use_cases():
    assert make_blob(fake.png(1, 1), "pasted") == Blob(fake.png(1, 1), "pasted.png", "image/png", (1, 1))
    assert make_blob(b"%PDF", "x", "application/pdf").name == "x.pdf"
    assert make_blob(b"a,b", "t.csv", "application/octet-stream").mime == "text/csv"
    assert [use_case(make_blob(b"x", n)) for n in ("a.docx", "b.md", "c.xlsx", "d.zip")] == [
        "my_files",
        "my_files",
        "ace_upload",
        "ace_upload",
    ]


def test_leading_urls():
    assert leading_urls("https://a.test/x.png  http://b.test/y What is this? https://c.test") == (
        ["https://a.test/x.png", "http://b.test/y"],
        "What is this? https://c.test",
    )
    assert leading_urls("Look at https://a.test") == ([], "Look at https://a.test")
    assert leading_urls("https://a.test/only") == (["https://a.test/only"], "")
