"""Stored responses: what `previous_response_id` replays, and what GET and DELETE /v1/responses/{id} serve.

A row holds the whole conversation (history and the request's new input) with the final Response object, so a
follow-up is one read by primary key, filtered by the caller's scope: another caller's id is not found, as is an
expired one. Rows are encrypted with the credentials' keys and kept `RESPONSES_TTL` seconds (pruned hourly). A
document over `RESPONSES_MAX_BYTES` of JSON is not stored (a warning names the id and size, never the content):
a follow-up to it gets `previous_response_not_found`, as OpenAI answers for an expired one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.utils import timezone

from common.db import in_thread
from openai_compat.errors import APIError
from openai_compat.models import StoredResponse

log = logging.getLogger(__name__)
PRUNE_BATCH = 1000


async def save(scope: str, input_items: list[dict], response: dict) -> None:
    """Store `response` (its `id` is the key) after `input_items`, the conversation's whole input."""
    content = orjson.dumps({"input": input_items, "response": response})
    if len(content) > settings.RESPONSES_MAX_BYTES:
        log.warning(
            "response %s not stored: %d bytes of JSON, over RESPONSES_MAX_BYTES=%d",
            response["id"],
            len(content),
            settings.RESPONSES_MAX_BYTES,
        )
        return
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.RESPONSES_TTL)
    fields = {"id": response["id"], "scope": scope, "created_at": now, "expires_at": expires_at}
    await in_thread(lambda: StoredResponse.objects.create(**fields, content=content.decode()))


async def history(response_id: str, scope: str) -> list[dict]:
    """The items a follow-up to `response_id` replays: its input, then its output."""
    document = await _document(response_id, scope)
    if document is None:
        raise APIError(
            400,
            f"Previous response with id '{response_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return [*document["input"], *document["response"]["output"]]


async def get(response_id: str, scope: str) -> dict:
    document = await _document(response_id, scope)
    if document is None:
        raise not_found(response_id)
    return document["response"]


async def delete(response_id: str, scope: str) -> dict:
    if not await in_thread(_delete, response_id, scope):
        raise not_found(response_id)
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def not_found(response_id: str) -> APIError:
    return APIError(404, f"Response with id '{response_id}' not found.")


def prune() -> int:
    """Delete expired rows, a batch at a time so that no statement holds many locks; how many went."""
    count = 0
    while ids := list(StoredResponse.objects.expired().values_list("pk", flat=True)[:PRUNE_BATCH]):
        count += StoredResponse.objects.filter(pk__in=ids).delete()[0]
    return count


def _read(response_id: str, scope: str) -> str | None:
    return StoredResponse.objects.live().filter(pk=response_id, scope=scope).values_list("content", flat=True).first()


def _delete(response_id: str, scope: str) -> int:
    return StoredResponse.objects.live().filter(pk=response_id, scope=scope).delete()[0]


async def _document(response_id: str, scope: str) -> dict[str, Any] | None:
    content = await in_thread(_read, response_id, scope)
    return orjson.loads(content) if content is not None else None
