"""Prometheus metrics of the gateway and the `/metrics` view that exposes them (`METRICS_TOKEN` guards it).

With several worker processes (`uvicorn --workers N`) each process writes its values into files under
`PROMETHEUS_MULTIPROC_DIR` and a scrape sums them, whichever worker answers it; unset, one process keeps
them in memory. Refreshes are counted where their outcome is decided (`tokens.refreshing.REFRESHES`: `tokens`
may not import this package). The hot path pays a few label lookups, at the end of each request (`accounting`):
`labels()` checks and stringifies its values under a lock, about 4 µs a call, so the request path keeps the
children it used (bounded: a model label is what the client sent) and pays a cache lookup instead.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from common.db import in_thread
from openai_compat.errors import APIError, error_response, unexpected
from tokens.models import Credential, Kind, Status

MODEL_CHARS = 100  # model names are labels as the client sent them: bounded
CHILDREN = 1024  # labelled children kept per metric for the request path; past that, `labels()` again
SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

REQUESTS = Counter(
    "chat2api_requests",
    "API requests by endpoint, model as sent, credential kind and status",
    ["endpoint", "model", "kind", "status"],
)
DURATION = Histogram(
    "chat2api_request_duration_seconds", "API requests until their body was sent", ["endpoint"], buckets=SECONDS
)
FIRST_BYTE = Histogram(
    "chat2api_time_to_first_byte_seconds",
    "From the request to the upstream's first output (a whole answer when not streamed)",
    ["endpoint", "kind"],
    buckets=SECONDS,
)
UPSTREAM_FAILURES = Counter(
    "chat2api_upstream_failures", "Failed upstream attempts by credential kind and reason", ["kind", "reason"]
)
LEASES = Gauge("chat2api_leases_in_flight", "Credential slots held by requests", multiprocess_mode="livesum")
TOKENS = Counter("chat2api_tokens", "Tokens of finished answers by key, model and type", ["key", "model", "type"])


def first_byte(endpoint: str, kind: str, seconds: float) -> None:
    _first_byte(endpoint, kind).observe(seconds)


def finished(endpoint: str, model: str, kind: str, status: int, seconds: float) -> None:
    _requests(endpoint, model, kind, status).inc()
    _duration(endpoint).observe(seconds)


def count_tokens(key: str, model: str, prompt: int, completion: int) -> None:
    """Tokens by key: a client key's name, `code` for `AUTHORIZATION` code holders, `own` for callers' own tokens."""
    if prompt:
        _tokens(key, model, "prompt").inc(prompt)
    if completion:
        _tokens(key, model, "completion").inc(completion)


@functools.lru_cache(maxsize=CHILDREN)
def _first_byte(endpoint: str, kind: str) -> Histogram:
    return FIRST_BYTE.labels(endpoint, kind)


@functools.lru_cache(maxsize=CHILDREN)
def _requests(endpoint: str, model: str, kind: str, status: int) -> Counter:
    return REQUESTS.labels(endpoint, model, kind, status)


@functools.lru_cache(maxsize=CHILDREN)
def _duration(endpoint: str) -> Histogram:
    return DURATION.labels(endpoint)


@functools.lru_cache(maxsize=CHILDREN)
def _tokens(key: str, model: str, kind: str) -> Counter:
    return TOKENS.labels(key, model, kind)


class CredentialStates:
    """Credentials by kind and status, counted at scrape time with one aggregate query."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = {
            (row["kind"], row["status"]): row["n"]
            for row in Credential.objects.values("kind", "status").annotate(n=Count("id")).order_by()
        }
        family = self._family()
        for kind in Kind.values:
            for status in Status.values:
                family.add_metric([kind, status], counts.get((kind, status), 0))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("chat2api_credentials", "Credentials by kind and status", labels=["kind", "status"])


def _multiprocess() -> bool:
    return bool(settings.PROMETHEUS_MULTIPROC_DIR)


if not _multiprocess():
    REGISTRY.register(CredentialStates())


def exposition() -> bytes:
    """The text format; with several processes, their files summed into a fresh registry (as the library asks)."""
    if not _multiprocess():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(CredentialStates())
    return generate_latest(registry)


async def view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics` with `Authorization: Bearer <METRICS_TOKEN>`; without the setting there is no such page."""
    if not settings.METRICS_TOKEN:
        return unexpected(request, Http404())
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.METRICS_TOKEN.encode()):
        return error_response(APIError(401, "A valid metrics bearer token is required.", code="invalid_api_key"))
    if request.method != "GET":
        return error_response(APIError(405, f"Method {request.method} is not allowed here.", code="method_not_allowed"))
    return HttpResponse(await in_thread(exposition), content_type=CONTENT_TYPE_LATEST)
