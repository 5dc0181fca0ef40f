"""Database calls from async code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

T = TypeVar("T")


async def in_thread(func: Callable[..., T], *args: Any) -> T:
    """Run a database call in a worker thread (never the event loop's); no request cycle closes stale connections
    there, so it is done here."""

    def call() -> T:
        close_old_connections()
        return func(*args)

    return await sync_to_async(call, thread_sensitive=False)()
