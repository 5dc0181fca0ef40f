"""Two gateway nodes on one PostgreSQL database: a response stored by one is served and deleted by the other."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.cluster import postgres_database, run_python
from tests.gateway import Gateway

pytestmark = pytest.mark.cluster
HEADERS = {"Authorization": "Bearer test-code"}
SAVE = (
    "import asyncio, django; django.setup(); from openai_compat.auth import scope_of; "
    "from openai_compat.responses import store; from tests.openai_compat.test_responses_store import INPUT, response; "
    "asyncio.run(store.save(scope_of('test-code'), INPUT, response('resp_cluster_1', 'Hello from a node')))"
)


@pytest.fixture
def nodes() -> Iterator[tuple[str, Gateway, Gateway]]:
    with postgres_database(f"chat2api_test_responses_cluster_{os.getpid()}") as url:
        a, b = Gateway({"DATABASE_URL": url}).start(), Gateway({"DATABASE_URL": url}).start()
        try:
            yield url, a, b
        finally:
            a.stop()
            b.stop()


def test_a_response_stored_on_one_node_is_read_and_deleted_on_another(nodes):
    url, a, b = nodes
    result = run_python({"DATABASE_URL": url}, "-c", SAVE)
    assert result.returncode == 0, result.stderr[-3000:]
    for node in (a, b):
        got = httpx.get(node.url + "/v1/responses/resp_cluster_1", headers=HEADERS)
        assert got.status_code == 200, got.text
        assert got.json()["output"][0]["content"][0]["text"] == "Hello from a node"
    assert httpx.delete(b.url + "/v1/responses/resp_cluster_1", headers=HEADERS).json()["deleted"] is True
    assert httpx.get(a.url + "/v1/responses/resp_cluster_1", headers=HEADERS).status_code == 404
