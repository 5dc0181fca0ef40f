from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.base import FakeServer
from tests.gateway import Gateway


@pytest.fixture(scope="session")
def page_gateway(gateway_env: dict[str, str], fake_openai: FakeServer) -> Iterator[Gateway]:
    """The real server with the chat page on, over the fake upstreams; `AUTHORIZATION=test-code`."""
    env = {**gateway_env, "ENABLE_GATEWAY": "true", "DJANGO_SETTINGS_MODULE": "tests.mirror.server_settings"}
    server = Gateway(env).start()
    yield server
    server.stop()
