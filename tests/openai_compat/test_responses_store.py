"""Stored responses: what `previous_response_id` replays, GET and DELETE /v1/responses/{id}; scoped to the caller
that made them, encrypted at rest, gone after RESPONSES_TTL; the same on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import logging
import os
from datetime import timedelta

import httpx
import openai
import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from chat2api_site.celery import app as celery_app
from openai_compat.auth import scope_of
from openai_compat.errors import APIError
from openai_compat.models import StoredResponse
from openai_compat.responses import store
from openai_compat.tasks import prune_responses
from tests import sdk
from tests.cluster import postgres_database, run_python
from tests.spec import assert_valid
from tokens import crypto

pytestmark = pytest.mark.django_db(transaction=True)
MINE, THEIRS = scope_of("test-code"), scope_of("someone-else")
SECRET = "the launch code is 0000"
INPUT = [
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello"}]},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": SECRET}]},
]


def response(response_id: str, text: str = "Hello!") -> dict:
    """A completed Response as the renderer builds it: `output` holds the items a follow-up replays."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1767225600,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "model": "gpt-5.5",
        "output": [
            {
                "type": "message",
                "id": f"msg_{response_id}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }
        ],
        "parallel_tool_calls": True,
        "metadata": {},
        "tool_choice": "auto",
        "temperature": 1.0,
        "top_p": 1.0,
        "tools": [],
        "store": True,
    }


def save(response_id: str, scope: str = MINE, text: str = "Hello!") -> dict:
    saved = response(response_id, text)
    asyncio.run(store.save(scope, INPUT, saved))
    return saved


def expire(response_id: str) -> None:
    StoredResponse.objects.filter(pk=response_id).update(expires_at=timezone.now() - timedelta(seconds=1))


def refused(call, response_id: str, scope: str) -> APIError:
    with pytest.raises(APIError) as caught:
        asyncio.run(call(response_id, scope))
    return caught.value


def scenario() -> None:
    """Everything the store promises, run against whichever database Django is configured with."""
    saved = save("resp_store_a")
    assert asyncio.run(store.history("resp_store_a", MINE)) == [*INPUT, *saved["output"]]
    assert asyncio.run(store.get("resp_store_a", MINE)) == saved
    with connection.cursor() as cursor:
        cursor.execute("SELECT scope, content FROM openai_compat_storedresponse")
        ((scope, content),) = cursor.fetchall()
    assert scope == MINE and SECRET not in content and "Hello!" not in content

    for unknown in (("resp_store_a", THEIRS), ("resp_store_nope", MINE)):  # another caller's is not theirs to see
        error = refused(store.history, *unknown)
        assert (error.status, error.param, error.code) == (400, "previous_response_id", "previous_response_not_found")
        assert error.message == f"Previous response with id '{unknown[0]}' not found."
        for call in (store.get, store.delete):
            error = refused(call, *unknown)
            assert (error.status, error.message) == (404, f"Response with id '{unknown[0]}' not found.")
            assert (error.type, error.param, error.code) == ("invalid_request_error", None, None)

    save("resp_store_old")
    expire("resp_store_old")
    for call in (store.history, store.get, store.delete):
        assert refused(call, "resp_store_old", MINE).status in (400, 404)
    assert store.prune() == 1
    assert list(StoredResponse.objects.values_list("pk", flat=True)) == ["resp_store_a"]

    deleted = asyncio.run(store.delete("resp_store_a", MINE))
    assert deleted == {"id": "resp_store_a", "object": "response.deleted", "deleted": True}
    assert refused(store.get, "resp_store_a", MINE).status == 404
    assert refused(store.delete, "resp_store_a", MINE).status == 404


def test_store_on_sqlite():
    scenario()


def test_store_on_postgresql():
    with postgres_database(f"chat2api_test_responses_{os.getpid()}") as url:
        script = (
            "import django; django.setup(); from tests.openai_compat.test_responses_store import scenario; scenario()"
        )
        result = run_python({"DATABASE_URL": url}, "-c", script)
        assert result.returncode == 0, result.stderr[-3000:]


def test_a_response_over_the_size_cap_is_not_stored(settings, caplog):
    settings.RESPONSES_MAX_BYTES = 1000
    with caplog.at_level(logging.WARNING, logger="openai_compat.responses.store"):
        save("resp_store_big", text="x" * 1000)
    assert not StoredResponse.objects.exists()
    assert "resp_store_big not stored" in caplog.text and "xxxx" not in caplog.text and SECRET not in caplog.text
    assert refused(store.history, "resp_store_big", MINE).code == "previous_response_not_found"


def test_rows_live_for_responses_ttl(settings):
    settings.RESPONSES_TTL = 3600
    save("resp_store_ttl")
    row = StoredResponse.objects.get()
    assert row.expires_at - row.created_at == timedelta(seconds=3600)


def test_key_rotation_reencrypts_stored_responses(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CREDENTIAL_KEYS = [old]
    crypto._fernet.cache_clear()
    try:
        saved = save("resp_store_rotated")
        settings.CREDENTIAL_KEYS = [new, old]
        crypto._fernet.cache_clear()
        call_command("rotate_credential_keys", stdout=io.StringIO())
        settings.CREDENTIAL_KEYS = [new]
        crypto._fernet.cache_clear()
        assert asyncio.run(store.get("resp_store_rotated", MINE)) == saved
    finally:
        crypto._fernet.cache_clear()


def client(gateway, key: str = "test-code") -> openai.OpenAI:
    return sdk.client(gateway.url, key)


def test_get_and_delete_over_http(gateway):
    saved = save("resp_store_http", text="Hello over HTTP")
    save("resp_store_theirs", scope=THEIRS)
    save("resp_store_expired")
    expire("resp_store_expired")
    sdk = client(gateway)

    got = sdk.responses.retrieve("resp_store_http")
    assert (got.id, got.output_text, got.model) == ("resp_store_http", "Hello over HTTP", "gpt-5.5")
    raw = httpx.get(gateway.url + "/v1/responses/resp_store_http", headers={"Authorization": "Bearer test-code"})
    assert raw.json() == saved
    assert_valid("Response", raw.json())

    for hidden in ("resp_store_theirs", "resp_store_expired", "resp_store_never"):
        with pytest.raises(openai.NotFoundError) as caught:
            sdk.responses.retrieve(hidden)
        assert_valid("ErrorResponse", caught.value.response.json())
        assert caught.value.body["message"] == f"Response with id '{hidden}' not found."
        with pytest.raises(openai.NotFoundError):
            sdk.responses.delete(hidden)

    reply = httpx.delete(gateway.url + "/v1/responses/resp_store_http", headers={"Authorization": "Bearer test-code"})
    assert reply.json() == {"id": "resp_store_http", "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve("resp_store_http")
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete("resp_store_http")
    assert StoredResponse.objects.filter(pk="resp_store_theirs").exists()  # another caller's survives a miss


def test_the_sdk_deletes(gateway):
    save("resp_store_sdk")
    client(gateway).responses.delete("resp_store_sdk")
    assert not StoredResponse.objects.filter(pk="resp_store_sdk").exists()


def test_the_hourly_task_prunes():
    save("resp_store_keep")
    save("resp_store_gone")
    expire("resp_store_gone")
    assert prune_responses() == 1
    assert list(StoredResponse.objects.values_list("pk", flat=True)) == ["resp_store_keep"]


def test_beat_prunes_hourly_with_a_task_the_worker_knows(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["prune-stored-responses"]
    assert entry["schedule"] == 3600.0
    celery_app.loader.import_default_modules()  # what a worker does at start-up (autodiscovery)
    assert entry["task"] in celery_app.tasks


def test_a_ttl_under_a_minute_stops_startup():
    result = run_python({"RESPONSES_TTL": "30"}, "manage.py", "check")
    assert result.returncode != 0
    assert result.stderr.strip() == "chat2api: RESPONSES_TTL=30 is invalid: must be at least 60"
