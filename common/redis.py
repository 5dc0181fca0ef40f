"""Redis from async code: one bounded connection pool and one registered Lua script per event loop.

redis.asyncio connections belong to the event loop that opened them (tests open a loop per test). Blocking: past
`REDIS_MAX_CONNECTIONS` a request waits for a free connection (up to `REDIS_TIMEOUT`) instead of failing at once;
a Redis that does not answer is a ConnectionError, not a hang.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    import redis.asyncio
    from redis.commands.core import AsyncScript


class LoopClients:
    """`get()` gives this event loop's client and `script`, opened on first use; `close()` closes them."""

    def __init__(self, url: str, script: str) -> None:
        self._url, self._script = url, script
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, AsyncScript]]
        self._clients = weakref.WeakKeyDictionary()

    def get(self) -> tuple[redis.asyncio.Redis, AsyncScript]:
        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            import redis.asyncio  # here: a process without REDIS_URL never loads redis-py

            timeout = settings.REDIS_TIMEOUT
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self._url,
                max_connections=settings.REDIS_MAX_CONNECTIONS,
                timeout=timeout,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                decode_responses=True,
            )
            client = redis.asyncio.Redis.from_pool(pool)
            self._clients[loop] = (client, client.register_script(self._script))
        return self._clients[loop]

    async def close(self) -> None:
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()
