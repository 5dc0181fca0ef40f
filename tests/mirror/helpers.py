"""Talking to the chat page's endpoints of a running gateway the way the page's script does."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx

from mirror.models import SeedToken
from tests.gateway import Gateway

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


class PageClient(httpx.Client):
    """An httpx client with the session and CSRF cookies of one logged-in browser."""

    csrf: str = ""

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"X-CSRFToken": self.csrf, **kwargs.pop("headers", {})}
        return self.request(method, "/chat/api/" + path, headers=headers, **kwargs)

    def new_conversation(self, model: str = "fake-model") -> str:
        response = self.api("POST", "conversations", json={"model": model})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def send_message(self, conversation: str, **payload) -> httpx.Response:
        return self.api("POST", f"conversations/{conversation}/send", json=payload, timeout=30)


def log_in(gateway: Gateway, token: str) -> PageClient:
    client = PageClient(base_url=gateway.url, follow_redirects=False, timeout=30)
    response = client.get("/", params={"token": token})
    assert response.status_code == 302, response.text
    assert response.headers["location"] == "/", "the token was refused"
    page = client.get("/")
    assert page.status_code == 200
    client.csrf = CSRF_META.search(page.text).group(1)
    return client


def seed_token(token: str, label: str = "alice") -> SeedToken:
    seed = SeedToken(label=label)
    seed.set_token(token)
    seed.save()
    return seed


def wait_for(condition: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
