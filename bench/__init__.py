"""`make bench`: the gateway's added latency, throughput, CPU and memory against a fake upstream.

`python -m bench` starts everything it needs on 127.0.0.1 (a fake OpenAI upstream, a temporary SQLite
database, the gateway under daphne and under uvicorn), drives it with an aiohttp load generator in its
own process, prints one table and cleans up. See `bench/__main__.py` for the phases.
"""
