"""Two gateway nodes on one PostgreSQL database: a response made on one is continued, served and deleted on the
other."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.cluster import postgres_database, run_python, two_nodes
from tests.fakes.openai_server import ANSWER
from tests.gateway import Gateway

pytestmark = pytest.mark.cluster
HEADERS = {"Authorization": "Bearer test-code"}
KEY = (
    "import django; django.setup(); from tests.factories import openai_key; "
    "openai_key('{url}/v1', 'sk-ok-cluster-responses', ['fake-model'])"
)


@pytest.fixture
def nodes() -> Iterator[tuple[str, Gateway, Gateway]]:
    with (
        postgres_database(f"chat2api_test_responses_cluster_{os.getpid()}") as url,
        two_nodes({"DATABASE_URL": url}) as (a, b),
    ):
        yield url, a, b


def test_a_response_made_on_one_node_is_continued_read_and_deleted_on_another(nodes, fake_openai):
    url, a, b = nodes
    result = run_python({"DATABASE_URL": url}, "-c", KEY.format(url=fake_openai.url))
    assert result.returncode == 0, result.stderr[-3000:]
    body = {"model": "fake-model", "input": "My name is Ada."}
    first = httpx.post(a.url + "/v1/responses", json=body, headers=HEADERS, timeout=30)
    assert first.status_code == 200, first.text
    follow = {"model": "fake-model", "input": "And my name?", "previous_response_id": first.json()["id"]}
    second = httpx.post(b.url + "/v1/responses", json=follow, headers=HEADERS, timeout=30)
    assert second.status_code == 200, second.text
    assert [m["content"] for m in fake_openai.requests[-1]["messages"]] == ["My name is Ada.", ANSWER, "And my name?"]
    for node in (a, b):
        got = httpx.get(f"{node.url}/v1/responses/{second.json()['id']}", headers=HEADERS)
        assert got.status_code == 200, got.text
        assert got.json()["output"] == second.json()["output"]
    deleted = httpx.delete(f"{b.url}/v1/responses/{first.json()['id']}", headers=HEADERS)
    assert deleted.json()["deleted"] is True
    assert httpx.get(f"{a.url}/v1/responses/{first.json()['id']}", headers=HEADERS).status_code == 404
