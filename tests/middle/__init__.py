"""The middle layer: the real ASGI application, pipeline, renderers and SSE, driven in this test process.

Between the unit tests (a renderer on a scripted answer) and the loopback tests (a server process, `tests/gateway.py`)
these send requests to `chat2api_site.asgi.application` itself, against the fake upstreams (real HTTP servers of the
wire protocols), with the pool loaded on demand (`client.loaded`) rather than on a timer: no server process and no
sleeps, so each test takes milliseconds. What only a real server shows (HTTP framing, daphne and uvicorn, workers,
signals, several nodes) stays with the loopback tests.
"""
