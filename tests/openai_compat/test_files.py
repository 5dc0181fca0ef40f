"""Generated images, code-interpreter files and citations, as Markdown the client can open: signed, expiring
links to the gateway's own `/v1/files/…`, which fetches a fresh download from upstream with the right account."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from unittest import mock

import httpx
import pytest
from django.conf import settings

from openai_compat import files
from openai_compat.upstreams.chatgpt_markdown import Asset
from tests import sdk
from tests.factories import chatgpt_account
from tests.fakes import chatgpt_server as fake
from tests.gateway import Gateway, settle
from tests.spec import assert_valid
from tokens.pool import PooledCredential

pytestmark = pytest.mark.django_db(transaction=True)
HTTP = httpx.Client(timeout=30)
LINK = re.compile(r"\]\((http://127\.0\.0\.1:\d+/v1/files/[^)\s]+)\)")


@pytest.fixture(scope="module")
def history_gateway(gateway_env) -> Iterator[Gateway]:
    env = {
        **gateway_env,
        "HISTORY_DISABLED": "false",
        "SECRET_KEY": settings.SECRET_KEY,  # links signed in this process must verify there too
    }
    server = Gateway(env).start()
    yield server
    server.stop()


def ask(gateway: Gateway, prompt: str, key: str = "test-code") -> str:
    client = sdk.client(gateway.url, key)
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": prompt}])
    return reply.choices[0].message.content


def only_link(text: str) -> str:
    (url,) = LINK.findall(text)
    return url


def requests_of(server: fake.FakeChatGPT, kind: str) -> list[dict]:
    return [r for r in server.requests if r["kind"] == kind]


def test_dalle_image_is_served_through_the_gateway(history_gateway, fake_chatgpt):
    chatgpt_account("at-ok-dalle")
    settle()
    text = ask(history_gateway, "draw a fox")
    url = only_link(text)
    assert text == f"![a red fox, watercolor]({url})\n\n{fake.CAPTION}"
    image = HTTP.get(url)  # no API key: the signature is the authorization
    assert image.status_code == 200 and image.content == fake.DALLE_PNG
    assert image.headers["content-type"] == "image/png" and image.headers["content-disposition"].startswith("inline")
    (download,) = requests_of(fake_chatgpt, "download")
    assert download["path"] == "/backend-api/files/file-AbC123/download" and download["token"] == "at-ok-dalle"
    (blob,) = requests_of(fake_chatgpt, "blob")
    assert "authorization" not in blob["headers"] and "oai-device-id" not in blob["headers"]  # another origin
    assert "localhost" not in text and "/blob/" not in text  # the client never sees an upstream URL


def test_4o_image_and_sandbox_file_downloads(history_gateway, fake_chatgpt):
    chatgpt_account("at-ok-4o")
    settle()
    image = HTTP.get(only_link(ask(history_gateway, "imagegen a fox")))
    assert image.status_code == 200 and image.content == fake.IMAGEGEN_PNG
    text = ask(history_gateway, "sandbox: square some numbers")
    url = only_link(text)
    assert text == fake.SANDBOX_TEXT.replace("sandbox:/mnt/data/table.csv", url)
    table = HTTP.get(url)
    assert table.status_code == 200 and table.content == fake.SANDBOX_FILE
    assert table.headers["content-disposition"] == "attachment; filename*=UTF-8''table.csv"
    first, second = requests_of(fake_chatgpt, "download")
    cid = fake.CONVERSATION_ID
    assert first["path"] == f"/backend-api/conversation/{cid}/attachment/file_00ab/download"
    assert second["path"] == f"/backend-api/conversation/{cid}/interpreter/download"
    assert second["body"] == {"message_id": "a-sb", "sandbox_path": "/mnt/data/table.csv"}


def test_own_token_link_carries_the_token_encrypted(history_gateway, fake_chatgpt):
    text = ask(history_gateway, "draw a fox", key="eyJok-own-files.e30.sig")
    url = only_link(text)
    assert "eyJok-own-files" not in url
    assert HTTP.get(url).content == fake.DALLE_PNG
    assert [r["token"] for r in requests_of(fake_chatgpt, "download")] == ["eyJok-own-files.e30.sig"]


def test_citations_are_markdown_links(history_gateway, fake_chatgpt):
    chatgpt_account("at-ok-cite")
    settle()
    text = ask(history_gateway, "cite your sources")
    assert text == f"The sky is blue ([{fake.SKY['title']}]({fake.SKY['url']})) and grass is green {fake.GRASS_ALT}."


def signed(asset: Asset, cred: PooledCredential, settings, age: float = 0) -> str:
    settings.HISTORY_DISABLED = False
    with mock.patch("django.core.signing.time.time", return_value=time.time() - age):
        return files.file_link(cred, "", asset)


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [("tamper", 404, "file_link_invalid"), ("expire", 410, "file_link_expired"), ("gone", 404, "file_link_invalid")],
)
def test_bad_links_are_refused_in_the_openai_shape(history_gateway, fake_chatgpt, settings, change, status, code):
    asset = Asset("file", "file-AbC123")
    cred = PooledCredential(id=999_999 if change == "gone" else 1, kind="chatgpt")
    path = signed(asset, cred, settings, age=settings.FILE_LINK_SECONDS + 60 if change == "expire" else 0)
    if change == "tamper":
        path = path.replace("/files/", "/files/x")
    response = HTTP.get(history_gateway.url + path)
    assert response.status_code == status
    assert_valid("ErrorResponse", response.json())
    assert response.json()["error"]["code"] == code
    assert requests_of(fake_chatgpt, "download") == []


def test_without_history_images_are_a_note_and_links_are_off(gateway, fake_chatgpt, settings):
    chatgpt_account("at-ok-nohistory")
    settle()
    text = ask(gateway, "draw a fox")
    assert "/v1/files/" not in text and "needs chat history" in text and text.endswith(fake.CAPTION)
    path = signed(Asset("file", "file-AbC123"), PooledCredential(id=1, kind="chatgpt"), settings)
    response = HTTP.get(gateway.url + path)
    assert response.status_code == 404 and "HISTORY_DISABLED" in response.json()["error"]["message"]
