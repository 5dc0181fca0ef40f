"""Request ids: every API reply carries `X-Request-Id` (the client's own when sane, else a new one), the same id is
on the log lines of that request, and `LOG_FORMAT=json` writes one JSON object per line."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from common.logs import JSONFormatter, RequestIdFilter, bind_request_id
from tests.cluster import run_python
from tests.factories import openai_key
from tests.gateway import ROOT, Gateway, eventually, settle
from tests.processes import platform_env, spawn, stop, wait_until

AUTH = {"Authorization": "Bearer test-code"}
MODEL = "request-id-model"
NEW_ID = re.compile(r"req_[0-9a-f]{32}")
PROCFILE = ROOT / "Procfile"


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def json_gateway(request, gateway_env: dict[str, str]) -> Iterator[Gateway]:
    gateway = Gateway({**gateway_env, "LOG_FORMAT": "json"}, server=request.param)
    yield gateway.start()
    gateway.stop()


def log_lines(gateway: Gateway) -> list[dict]:
    return [json.loads(line) for line in gateway.logs().splitlines() if line.strip()]


def warned_and_logged(gateway: Gateway, request_id: str) -> bool:
    """The request's upstream failure and its line in the server's request log both carry its id."""
    lines = [(line["level"], line["logger"]) for line in log_lines(gateway) if line["request_id"] == request_id]
    return any(level == "WARNING" for level, _ in lines) and any(logger.endswith(".access") for _, logger in lines)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_failure_is_logged_under_the_reply_id(json_gateway, fake_openai, stream):
    openai_key(fake_openai.url + "/v1", "sk-500-request-ids", models=[MODEL])
    settle()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
    reply = httpx.post(json_gateway.url + "/v1/chat/completions", json=body, headers=AUTH, timeout=30)
    request_id = reply.headers["x-request-id"]
    assert NEW_ID.fullmatch(request_id)
    # the stream's warning comes from the task that starts the answer, which inherits the request's id
    assert eventually(lambda: warned_and_logged(json_gateway, request_id)), json_gateway.logs()[-2000:]
    assert "sk-500-request-ids" not in json_gateway.logs()

    own = f"trace-{stream}"
    reply = httpx.post(
        json_gateway.url + "/v1/chat/completions", json=body, headers={**AUTH, "X-Request-Id": own}, timeout=30
    )
    assert reply.headers["x-request-id"] == own
    assert eventually(lambda: warned_and_logged(json_gateway, own))


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/v1/models", AUTH),
        ("GET", "/v1/models", {}),  # 401
        ("GET", "/v1/no-such-route", AUTH),  # an unknown path: 404
        ("PUT", "/v1/models", AUTH),  # 405
        ("GET", "/v1/files/not-a-signed-link", {}),  # a generated file's link (no API key): 404
        ("OPTIONS", "/v1/chat/completions", {"Origin": "https://example.com"}),  # a CORS preflight
    ],
)
def test_a_sane_client_id_is_echoed_and_others_are_replaced(json_gateway, method, path, headers):
    def sent(request_id: str) -> str:
        reply = httpx.request(method, json_gateway.url + path, headers={**headers, "X-Request-Id": request_id})
        return reply.headers["x-request-id"]

    sane = "Trace.01:a_b-" + "x" * 115
    assert sent(sane) == sane
    for insane in ("x" * 129, "a b", "a/b", "<script>", ""):
        assert NEW_ID.fullmatch(sent(insane))
    assert NEW_ID.fullmatch(httpx.request(method, json_gateway.url + path, headers=headers).headers["x-request-id"])


def test_every_line_of_the_json_log_is_an_object_with_the_fields(json_gateway):
    httpx.get(json_gateway.url + "/v1/models", headers=AUTH)
    lines = log_lines(json_gateway)
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= set(line)
        assert line["time"].endswith("+00:00")


def formatted(formatter: logging.Formatter, sent_id: str | None, exc: BaseException | None = None) -> str:
    """One line logged by a task that a request started, through a handler configured as settings.LOGGING's."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(formatter)
    log = logging.getLogger("tests.request_ids")
    log.addHandler(handler)
    log.propagate = False

    async def request() -> None:
        if sent_id is not None:
            bind_request_id(sent_id)
        await asyncio.ensure_future(asyncio.to_thread(log.error, "upstream\nfailed", exc_info=exc))

    try:  # a context of its own: another test of this process may have bound an id in the current one
        contextvars.Context().run(asyncio.run, request())
    finally:
        log.removeHandler(handler)
    return out.getvalue()


def test_json_lines_carry_the_id_and_the_exception():
    try:
        raise ValueError("boom")
    except ValueError as exc:
        text = formatted(JSONFormatter(), "trace-1", exc)
    (line,) = text.splitlines()
    record = json.loads(line)
    assert record["request_id"] == "trace-1" and record["message"] == "upstream\nfailed"
    assert record["level"] == "ERROR" and record["logger"] == "tests.request_ids"
    assert "ValueError: boom" in record["exc_info"]
    assert json.loads(formatted(JSONFormatter(), None))["request_id"] == "-"


def test_plain_lines_show_the_id():
    from django.conf import settings

    plain = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"])
    assert "[trace-2] tests.request_ids: upstream" in formatted(plain, "trace-2")


def test_a_celery_worker_logs_json_lines(tmp_path):
    """A worker keeps LOGGING's handlers (JSON with LOG_FORMAT=json) instead of installing Celery's own."""
    log = tmp_path / "worker.log"
    env = platform_env(LOG_FORMAT="json", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    (command,) = [line.partition(": ")[2] for line in PROCFILE.read_text().splitlines() if line.startswith("worker:")]
    worker = spawn(command, env, log)
    try:
        wait_until(lambda: "ready" in log.read_text(), "the worker to be ready", timeout=60)
    finally:
        stop(worker)
    # Celery's SIGTERM handler prints this one line itself (`safe_say`), past any logging configuration.
    printed = "worker: Warm shutdown (MainProcess)"
    lines = [line for line in log.read_text().splitlines() if line.strip() and line != printed]
    assert any("ready" in json.loads(line)["message"] for line in lines), lines[-5:]
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= set(json.loads(line)), line


def test_a_bad_log_format_stops_startup_with_one_line():
    result = run_python({"LOG_FORMAT": "xml"}, "manage.py", "check")
    assert result.returncode != 0
    assert result.stderr.strip() == "chat2api: LOG_FORMAT=xml is invalid: must be one of plain, json"
