from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.base import FakeServer
from tests.gateway import Gateway

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def access_token(subject: str, lifetime: int = 3600) -> str:
    """An unsigned JWT like ChatGPT's; the fake ChatGPT server picks its scenario from `sub`."""

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'sub': subject, 'exp': int(time.time()) + lifetime})}.sig"


@pytest.fixture(scope="session")
def page_gateway(
    test_database: str, fake_openai: FakeServer, fake_chatgpt: FakeServer, fake_oauth: FakeServer
) -> Iterator[Gateway]:
    """The real server with the chat page on, over the fake upstreams; `AUTHORIZATION=test-code`."""
    token_url = fake_oauth.url + "/oauth/token"
    env = {
        "ENABLE_GATEWAY": "true",
        "DATABASE_URL": f"sqlite:///{test_database}",
        "DJANGO_SETTINGS_MODULE": "tests.mirror.server_settings",
        "CHATGPT_BASE_URL": fake_chatgpt.url,
        "OAUTH_TOKEN_URL": token_url,
        "OAUTH_RT_TOKEN_URL": token_url,
    }
    server = Gateway(env).start()
    yield server
    server.stop()
