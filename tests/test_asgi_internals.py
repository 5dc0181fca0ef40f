"""The Django and asgiref internals `chat2api_site/asgi.py` relies on are still there and still behave as it assumes.

asgi.py subclasses `ASGIHandler`, replaces some of its methods with copies that skip per-request work, and
dispatches the request signals itself. An upgrade that renames, re-signs or rewrites one of those would break
the API path quietly (or make the copy drift from the original): each failure here names the internal and the
line of asgi.py that relies on it. A method asgi.py copies is fingerprinted: when the original changes, review
the copy at that line against the new original, then update the fingerprint.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.cache import close_caches
from django.core.handlers import asgi as django_asgi
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler, reset_urlconf
from django.core.handlers.exception import convert_exception_to_response
from django.db import close_old_connections, reset_queries
from django.dispatch import Signal
from django.http import HttpResponse
from django.http.response import HttpResponseBase

from chat2api_site import asgi
from tests.gateway import ROOT

SOURCE = (ROOT / "chat2api_site" / "asgi.py").read_text().splitlines()


def relied_on(snippet: str) -> str:
    """`asgi.py:<line>: <code>` of the first line holding `snippet` (the test is stale if asgi.py no longer has it)."""
    for number, line in enumerate(SOURCE, 1):
        if snippet in line:
            return f"chat2api_site/asgi.py:{number}: {line.strip()}"
    raise AssertionError(f"asgi.py no longer contains {snippet!r}: update this test to what it relies on now")


def fingerprint(function: object) -> str:
    return hashlib.sha256(textwrap.dedent(inspect.getsource(function)).encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("internal", "function", "expected", "snippet"),
    [
        ("Signal._live_receivers", Signal._live_receivers, "(self, sender)", "signal._live_receivers(sender)"),
        ("BaseHandler.load_middleware", BaseHandler.load_middleware, "(self, is_async=False)", "def load_middleware"),
        ("BaseHandler._get_response_async", BaseHandler._get_response_async, "(self, request)", "_get_response_async("),
        ("ASGIHandler.__init__", ASGIHandler.__init__, "(self)", "super().__init__()"),
        ("ASGIHandler.__call__", ASGIHandler.__call__, "(self, scope, receive, send)", "async def __call__"),
        ("ASGIHandler.handle", ASGIHandler.handle, "(self, scope, receive, send)", "async def handle"),
        ("ASGIHandler.read_body", ASGIHandler.read_body, "(self, receive)", "async def read_body"),
        ("ASGIHandler.create_request", ASGIHandler.create_request, "(self, scope, body_file)", "self.create_request("),
        ("ASGIHandler.send_response", ASGIHandler.send_response, "(self, response, send)", "self.send_response("),
        ("ASGIHandler.run_get_response", ASGIHandler.run_get_response, "(self, request)", "self.run_get_response("),
        ("django.core.handlers.asgi.get_script_prefix", get_script_prefix, "(scope)", "get_script_prefix(scope)"),
        ("django.db.reset_queries", reset_queries, "(**kwargs)", "SKIPPED_RECEIVERS = "),
        ("django.db.close_old_connections", close_old_connections, "(**kwargs)", "SKIPPED_RECEIVERS = "),
        ("django.core.cache.close_caches", close_caches, "(**kwargs)", "INLINE_RECEIVERS = "),
        ("django.core.handlers.base.reset_urlconf", reset_urlconf, "(sender, **kwargs)", "INLINE_RECEIVERS = "),
    ],
)
def test_signature(internal, function, expected, snippet):
    assert str(inspect.signature(function)) == expected, f"{internal} changed; relied on at {relied_on(snippet)}"


@pytest.mark.parametrize(
    ("internal", "function", "expected", "snippet"),
    [
        ("ASGIHandler.__call__", ASGIHandler.__call__, "fd60e60793c4542e", "async with ThreadSensitiveContext("),
        ("ASGIHandler.handle", ASGIHandler.handle, "ab2236e287c805bf", "async def handle"),
        ("ASGIHandler.read_body", ASGIHandler.read_body, "0a30b6b3ac2775ba", "async def read_body"),
        ("HttpResponseBase.close", HttpResponseBase.close, "c867968c5c66060f", "def close_resources"),
        ("Signal.asend", Signal.asend, "936bd740f8a34a8b", "async def send_signal"),
        (
            "convert_exception_to_response",
            convert_exception_to_response,
            "a297ae868bddaca2",
            "async def _get_response_or_error",
        ),
    ],
)
def test_a_copied_original_is_unchanged(internal, function, expected, snippet):
    assert fingerprint(function) == expected, (
        f"{internal} changed upstream; asgi.py re-implements it at {relied_on(snippet)}: "
        f"review the copy against the new original, then set the fingerprint to {fingerprint(function)!r}"
    )


def test_the_middleware_attributes_are_those_django_sets():
    """APIHandler.load_middleware sets exactly what BaseHandler.load_middleware sets (the rest of Django reads them)."""
    django_sets = set(re.findall(r"self\.(_\w+)\s*=", inspect.getsource(BaseHandler.load_middleware)))
    missing = {name for name in django_sets if not hasattr(asgi.api, name)}
    assert not missing, f"BaseHandler.load_middleware now also sets {missing}; {relied_on('def load_middleware')}"
    assert asgi.api._middleware_chain == asgi.api._get_response_or_error, (
        f"ASGIHandler.__init__ no longer calls load_middleware(); relied on at {relied_on('super().__init__()')}"
    )
    assert "self._middleware_chain(request)" in inspect.getsource(BaseHandler.get_response_async), (
        f"BaseHandler.get_response_async no longer calls _middleware_chain; {relied_on('self._middleware_chain = ')}"
    )


def test_no_base_class_uses_the_executor_attribute():
    sources = inspect.getsource(django_asgi) + inspect.getsource(inspect.getmodule(BaseHandler))
    assert "self.executor" not in sources, (
        f"Django's handler now has an executor of its own: {relied_on('self.executor =')}"
    )


def test_the_response_carries_the_handler_class_and_the_closers():
    """`run_get_response` tags the response with `_handler_class`; `close()` is the closers, `closed` and the signal."""
    assert "response._handler_class = self.__class__" in inspect.getsource(ASGIHandler.run_get_response), (
        f"ASGIHandler.run_get_response no longer sets _handler_class: {relied_on('_handler_class')}"
    )
    response, closed, finished = HttpResponse(), [], []
    response._resource_closers.append(lambda: closed.append(True))

    def receiver(sender: type, **named) -> None:
        finished.append(sender)

    signals.request_finished.connect(receiver, dispatch_uid="test_asgi_internals")
    try:
        response._handler_class = ASGIHandler
        response.close()
    finally:
        signals.request_finished.disconnect(dispatch_uid="test_asgi_internals")
    where = relied_on("for closer in response._resource_closers")
    assert closed == [True] and response.closed and response._resource_closers == [], f"close() changed: {where}"
    assert finished == [ASGIHandler], (
        f"close() no longer sends request_finished: {relied_on('async def close_response')}"
    )


def test_live_receivers_are_split_into_sync_and_async():
    signal = Signal()

    def sync_receiver(**named) -> None: ...

    async def async_receiver(**named) -> None: ...

    signal.connect(sync_receiver, weak=False)
    signal.connect(async_receiver, weak=False)
    where = relied_on("signal._live_receivers(sender)")
    assert signal._live_receivers(object) == ([sync_receiver], [async_receiver]), f"_live_receivers: {where}"


@pytest.mark.parametrize(
    ("signal", "name"), [(signals.request_started, "request_started"), (signals.request_finished, "request_finished")]
)
def test_djangos_request_receivers_are_the_ones_asgi_py_knows(signal, name):
    """Django's own receivers of the request signals are all skipped or run inline; those are sync functions."""
    sync_receivers, async_receivers = signal._live_receivers(ASGIHandler)
    djangos = {r for r in [*sync_receivers, *async_receivers] if r.__module__.startswith("django.")}
    known = asgi.SKIPPED_RECEIVERS | asgi.INLINE_RECEIVERS
    where = relied_on("SKIPPED_RECEIVERS = ")
    assert djangos <= known, f"{name} has Django receivers asgi.py does not know: {djangos - known}; {where}"
    assert djangos & asgi.SKIPPED_RECEIVERS, f"{name} lost its database receivers; {where}"
    assert not any(inspect.iscoroutinefunction(r) for r in djangos), f"{relied_on('INLINE_RECEIVERS = ')}"


def test_request_finished_has_the_inline_receivers():
    sync_receivers, _ = signals.request_finished._live_receivers(ASGIHandler)
    missing = asgi.INLINE_RECEIVERS - set(sync_receivers)
    assert not missing, f"request_finished no longer has {missing}: {relied_on('INLINE_RECEIVERS = ')}"


def test_a_thread_sensitive_context_runs_on_the_executor_it_is_given():
    """asgiref >= 3.13: `ThreadSensitiveContext(executor=...)` puts thread-sensitive calls on that executor."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="internals-check")

    async def thread_names() -> set[str]:
        names = set()
        for _ in range(2):
            async with ThreadSensitiveContext(executor=executor):
                names.add(await sync_to_async(lambda: threading.current_thread().name)())
        return names

    try:
        names = asyncio.run(thread_names())
    finally:
        executor.shutdown()
    where = relied_on("ThreadSensitiveContext(executor=self.executor)")
    assert len(names) == 1 and names.pop().startswith("internals-check"), f"ThreadSensitiveContext: {where}"


def test_the_script_prefix_comes_from_the_root_path(settings):
    settings.FORCE_SCRIPT_NAME = None
    assert get_script_prefix({"root_path": "/under"}) == "/under", relied_on("get_script_prefix(scope)")
