"""Prometheus `/metrics` of a real gateway process: guarded by METRICS_TOKEN, counting what requests did, and summing
the worker processes of `uvicorn --workers 2` in one scrape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import openai_key
from tests.gateway import Gateway, eventually, settle
from tokens import refreshing

pytestmark = pytest.mark.django_db(transaction=True)
SCRAPER = {"Authorization": "Bearer scrape-secret"}
CALLER = {"Authorization": "Bearer test-code"}
CHAT = "/v1/chat/completions"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(gateway: Gateway) -> Samples:
    reply = httpx.get(gateway.url + "/metrics", headers=SCRAPER)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    families = text_string_to_metric_families(reply.text)
    return {(s.name, frozenset(s.labels.items())): s.value for f in families for s in f.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def chat(gateway: Gateway, model: str, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello"}], **extra}
    return httpx.post(gateway.url + CHAT, json=body, headers=CALLER, timeout=30)


@pytest.fixture
def metered(gateway_env: dict[str, str], fake_openai) -> Iterator[Gateway]:
    openai_key(fake_openai.url + "/v1", "sk-ok-metrics", models=["metrics-ok"])
    openai_key(fake_openai.url + "/v1", "sk-500-metrics", models=["metrics-fail"])
    server = Gateway({**gateway_env, "METRICS_TOKEN": "scrape-secret"}).start()
    settle()
    yield server
    server.stop()


def test_metrics_count_requests_failures_tokens_and_credentials(metered):
    assert chat(metered, "metrics-ok").status_code == 200
    assert chat(metered, "metrics-ok", stream=True).status_code == 200
    assert chat(metered, "metrics-fail").status_code == 502
    assert httpx.post(metered.url + CHAT, json={"model": "metrics-ok"}, headers=CALLER).status_code == 400

    ok = {"endpoint": CHAT, "model": "metrics-ok", "kind": "openai", "status": "200"}
    assert eventually(lambda: value(scrape(metered), "chat2api_requests_total", **ok) == 2)
    samples = scrape(metered)
    failed = {"endpoint": CHAT, "model": "metrics-fail", "kind": "", "status": "502"}
    assert value(samples, "chat2api_requests_total", **failed) == 1
    assert value(samples, "chat2api_requests_total", endpoint=CHAT, model="", kind="", status="400") == 1
    assert value(samples, "chat2api_upstream_failures_total", kind="openai", reason="next") == 1
    assert value(samples, "chat2api_request_duration_seconds_count", endpoint=CHAT) == 4
    assert value(samples, "chat2api_time_to_first_byte_seconds_count", endpoint=CHAT, kind="openai") == 2
    assert value(samples, "chat2api_leases_in_flight") == 0
    assert value(samples, "chat2api_credentials", kind="openai", status="active") == 2
    assert value(samples, "chat2api_credentials", kind="codex", status="active") == 0
    assert value(samples, "chat2api_tokens_total", key="code", model="metrics-ok", type="completion") > 0
    assert value(samples, "chat2api_tokens_total", key="code", model="metrics-ok", type="prompt") > 0


def test_metrics_refuse_a_wrong_bearer(metered):
    assert httpx.get(metered.url + "/metrics").status_code == 401
    reply = httpx.get(metered.url + "/metrics", headers={"Authorization": "Bearer nope"})
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "invalid_api_key"


def test_no_metrics_without_the_setting(gateway):
    reply = httpx.get(gateway.url + "/metrics", headers=SCRAPER)
    assert reply.status_code == 404
    assert reply.json()["error"]["message"] == "Invalid URL (GET /metrics)"


def test_refreshes_by_outcome():
    before = REGISTRY.get_sample_value("chat2api_refreshes_total", {"outcome": "skipped"}) or 0
    cred = openai_key("http://127.0.0.1:9/v1", "sk-ok-no-refresh-token")
    assert refreshing.refresh_credential(cred.pk).result == "skipped"
    assert REGISTRY.get_sample_value("chat2api_refreshes_total", {"outcome": "skipped"}) == before + 1


def test_workers_sum_in_one_scrape(gateway_env, fake_openai, tmp_path: Path):
    openai_key(fake_openai.url + "/v1", "sk-ok-metrics", models=["metrics-ok"])
    env = {**gateway_env, "METRICS_TOKEN": "scrape-secret", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    server = Gateway(env, server="uvicorn", workers=2).start()
    try:
        settle()
        sent = 0

        def both_workers_served() -> bool:
            nonlocal sent
            with httpx.Client(base_url=server.url, headers=CALLER, timeout=30) as client:  # a new connection each
                reply = client.get("/v1/models")
            assert reply.status_code == 200, reply.text
            sent += 1
            return sent >= 6 and len(list(tmp_path.glob("counter_*.db"))) >= 2  # a file per process that counted

        assert eventually(both_workers_served, seconds=30)
        models = {"endpoint": "/v1/models", "model": "", "kind": "", "status": "200"}
        assert eventually(lambda: value(scrape(server), "chat2api_requests_total", **models) == sent)
    finally:
        server.stop()
