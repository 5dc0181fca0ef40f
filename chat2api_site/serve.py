"""`make run` / the Procfile's web process: check the database, make sure an admin can log in, then serve.

Only the embedded default (SQLite, one machine) migrates here. Elsewhere every node would migrate at
once, so migrations are the release step's (`manage.py migrate`, the Procfile's `release`) and a node
refuses to start on a database they have not reached yet. These duties run once, in this process; then it
serves with uvicorn (`WEB_CONCURRENCY` worker processes, which it supervises) or, with `ASGI_SERVER=daphne`,
becomes one daphne process.

uvicorn runs as its command line would, except that logging stays Django's `LOGGING` (uvicorn's own handlers
would write plain lines into a JSON log) and a worker stopped by SIGTERM exits normally once it has shut down
gracefully: uvicorn re-raises the signal with the default handler, which would kill the process before its
`atexit` handlers (the request log's last batch) run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import django
import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from uvicorn.supervisors import Multiprocess

ADMIN_HINT = (
    "No admin account exists yet. Create one with:\n"
    "    .venv/bin/python manage.py createsuperuser\n"
    "or set ADMIN_USERNAME and ADMIN_PASSWORD before starting."
)


def prepare_database() -> None:
    """Migrate the embedded database; elsewhere stop with one line if the release step has not run."""
    if settings.EMBEDDED:
        call_command("migrate", interactive=False, verbosity=0)
        return
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        sys.exit("chat2api: the database has unapplied migrations: run `python manage.py migrate --noinput` first")


def check_credential_keys() -> None:
    """Say at start-up when the keys cannot read the stored credentials (`/readyz` says so too)."""
    from tokens.crypto import KEYS_MISMATCH, undecryptable
    from tokens.models import Credential

    count = undecryptable(Credential)
    if count:
        print(f"chat2api: {KEYS_MISMATCH.format(count=count)}", file=sys.stderr, flush=True)


def ensure_admin() -> None:
    """With no superuser yet, create one from ADMIN_USERNAME/ADMIN_PASSWORD, or say how to."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    if users.filter(is_superuser=True).exists():
        return
    if settings.ADMIN_USERNAME and settings.ADMIN_PASSWORD:
        users.create_superuser(settings.ADMIN_USERNAME, "", settings.ADMIN_PASSWORD)
        print(f"Created the admin account '{settings.ADMIN_USERNAME}'.")
    else:
        print(ADMIN_HINT)


APP = "chat2api_site.asgi:application"
MULTIPLIED = (
    "chat2api: WEB_CONCURRENCY={workers} without REDIS_URL: each worker process keeps its own pool state, so every "
    "per-credential concurrency limit, cooldown and client key rate counts {workers} times; set REDIS_URL to share them"
)


class Config(uvicorn.Config):
    """uvicorn's configuration. Its `configure_logging` is the one hook uvicorn runs in every worker process before
    the server (and in the supervisor): there a stop signal that uvicorn re-raises after its graceful shutdown
    becomes a normal exit. With `log_config=None` it installs no logging of its own."""

    def configure_logging(self) -> None:
        super().configure_logging()
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, exit_normally)


def exit_normally(signum: int, frame: FrameType | None) -> None:
    """What uvicorn's re-raised stop signal does: a normal exit, so `atexit` runs."""
    sys.exit(0)


@contextlib.contextmanager
def metrics_directory(workers: int) -> Iterator[None]:
    """Workers sum their metrics through files: an operator's directory loses an earlier run's; without one,
    several workers share a temporary one for this run."""
    if settings.PROMETHEUS_MULTIPROC_DIR:
        for stale in Path(settings.PROMETHEUS_MULTIPROC_DIR).glob("*.db"):
            stale.unlink()
        yield
    elif workers > 1:
        with tempfile.TemporaryDirectory(prefix="chat2api-metrics-") as path:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
            yield
    else:
        yield


def serve_uvicorn(host: str, port: int, workers: int) -> None:
    """`uvicorn.run()` with our `Config`; one worker serves in this process."""
    if workers > 1 and not settings.REDIS_URL:
        print(MULTIPLIED.format(workers=workers), file=sys.stderr, flush=True)
    connections.close_all()  # this thread becomes the event loop's (one worker) or only supervises
    config = Config(
        APP, host=host, port=port, workers=workers, loop="uvloop", http="httptools", lifespan="off", log_config=None
    )
    with metrics_directory(workers):
        if workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            uvicorn.Server(config).run()


def serve_daphne(host: str, port: int) -> None:
    argv = [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), APP]
    os.execv(argv[0], argv)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat2api_site.settings")
    django.setup()
    prepare_database()
    call_command("collectstatic", interactive=False, verbosity=0)
    check_credential_keys()
    ensure_admin()
    host, port = settings.HOST, settings.PORT
    print(f"chat2api serving on http://{host}:{port}/ (admin: http://{host}:{port}/admin/)", flush=True)
    if settings.ASGI_SERVER == "daphne":
        serve_daphne(host, port)
    else:
        serve_uvicorn(host, port, settings.WEB_CONCURRENCY)


if __name__ == "__main__":
    main()
