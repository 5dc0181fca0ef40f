"""Which models an `openai` key's upstream serves, read from its `GET /models` off the request path.

The result is stored on the credential (`discovered_models`, name → `created`), and the pool snapshot
carries it, so `/v1/models` and routing never call anything. A key with its own model list still gets
the upstream's `created` values. A failed fetch keeps the last list; an empty one means "any name".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from curl_cffi.requests.exceptions import RequestException
from django.db.models import Q
from django.utils import timezone

from tokens import probe
from tokens.models import Credential, Kind

MAX_AGE = timedelta(hours=1)  # the refresh pass fetches again once a list is this old
MAX_MODELS = 2000  # an upstream listing more is cut short rather than bloating every pool snapshot
MAX_NAME = 200
FETCH_FAILED = "fetch models failed: "  # a last error that only a later fetch clears


class DiscoveryFailed(Exception):
    """Why the upstream's model list could not be read; the text is safe to show."""


@dataclass(frozen=True, slots=True)
class Fetched:
    credential_id: int
    ok: bool
    detail: str


def due_ids() -> list[int]:
    """Usable `openai` keys whose model list was never fetched, or not within `MAX_AGE`."""
    stale = Q(models_fetched_at__isnull=True) | Q(models_fetched_at__lt=timezone.now() - MAX_AGE)
    return list(Credential.objects.usable().filter(stale, kind=Kind.OPENAI).values_list("pk", flat=True))


def fetch_models(cred_id: int) -> Fetched:
    """Read the key's upstream `GET /models` and store what it lists; bumps `updated_at` (and so reloads
    every pool) only when the list changed."""
    cred = Credential.objects.filter(pk=cred_id, kind=Kind.OPENAI).first()
    if cred is None:
        return Fetched(cred_id, False, "not an OpenAI-compatible key")
    row = Credential.objects.filter(pk=cred_id)
    try:
        found = read_models(cred)
    except DiscoveryFailed as exc:
        row.update(last_error=f"{FETCH_FAILED}{exc}")  # shown in the list; `updated_at` stays: no pool reload
        return Fetched(cred_id, False, str(exc))
    now = timezone.now()
    changes: dict[str, Any] = {"discovered_models": found, "updated_at": now} if found != cred.discovered_models else {}
    row.update(models_fetched_at=now, **changes)
    row.filter(last_error__startswith=FETCH_FAILED).update(last_error="")  # only a fetch's own failure
    return Fetched(cred_id, True, f"{len(found)} model(s)")


def read_models(cred: Credential) -> dict[str, int]:
    try:
        response = probe.get(cred)
    except RequestException as exc:
        raise DiscoveryFailed(f"unreachable ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise DiscoveryFailed(f"GET /models answered HTTP {response.status_code}")
    try:
        return parse_models(orjson.loads(response.content))
    except orjson.JSONDecodeError:
        raise DiscoveryFailed("GET /models did not answer JSON") from None


def parse_models(doc: Any) -> dict[str, int]:
    """name → `created` (0 when absent) from an OpenAI model list; entries without a usable id are skipped."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise DiscoveryFailed("GET /models did not answer a model list")
    found: dict[str, int] = {}
    for item in data[:MAX_MODELS]:
        name = item.get("id") if isinstance(item, dict) else None
        if isinstance(name, str) and 0 < len(name) <= MAX_NAME:
            created = item.get("created")
            found[name] = created if type(created) is int and created > 0 else 0
    return dict(sorted(found.items()))
