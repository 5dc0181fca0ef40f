"""The fake OpenAI upstream for the benchmark: a fast instance and a slow one, in one process.

`python -m bench.fake --port A --slow-port B --delay S` serves `tests.fakes.openai_server.make_app()` on A
(answers at once) and `make_app(delay=S)` on B (S seconds between streamed chunks, to hold streams open).
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from bench.common import raise_nofile
from tests.fakes.openai_server import make_app


async def serve(port: int, slow_port: int, delay: float) -> None:
    for listen, pause in ((port, 0.0), (slow_port, delay)):
        runner = web.AppRunner(make_app(delay=pause), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", listen, backlog=4096).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slow-port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=3.0)
    args = parser.parse_args()
    raise_nofile()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        run = asyncio.run
    run(serve(args.port, args.slow_port, args.delay))


if __name__ == "__main__":
    main()
