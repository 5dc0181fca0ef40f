"""One event loop for the whole layer, as a server process has: the pool's watcher, the upstream sessions (one per
loop) and the leases live as long as it does; each test runs its coroutine in it with `run`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from pytest_django.fixtures import Settings

from tests.fakes.base import FakeServer
from tokens import usage
from tokens.pool import pool

Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(scope="session")
def run() -> Iterator[Run]:
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture(autouse=True)
def written(run: Run, transactional_db: None) -> Iterator[None]:
    """Each test's database is one the pool's worker threads can read (committed rows); what its requests counted is
    written before its rows go, as a server's watcher would have written it."""
    yield
    run(_flush())


async def _flush() -> None:
    await pool.flush_usage()
    await usage.flush()


@pytest.fixture(autouse=True)
def api_settings(settings: Settings, fake_chatgpt: FakeServer, fake_codex: FakeServer) -> Settings:
    """What the loopback gateways are given (`gateway_env`)."""
    settings.AUTHORIZATION = ["test-code"]
    settings.CHATGPT_BASE_URL = fake_chatgpt.url
    settings.CODEX_BASE_URL = fake_codex.url + "/backend-api/codex"
    return settings
