"""`make run` / the Procfile's web process: check the database, make sure an admin can log in, then serve.

Only the embedded default (SQLite, one machine) migrates here. Elsewhere every node would migrate at
once, so migrations are the release step's (`manage.py migrate`, the Procfile's `release`) and a node
refuses to start on a database they have not reached yet. The ASGI server is daphne unless
`ASGI_SERVER=uvicorn`; both serve the same application.
"""

from __future__ import annotations

import os
import sys

import django
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

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


def server_argv(host: str, port: int) -> list[str]:
    app = "chat2api_site.asgi:application"
    if settings.ASGI_SERVER == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--host", host, "--port", str(port), "--no-access-log", app]
    return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), app]


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat2api_site.settings")
    django.setup()
    prepare_database()
    call_command("collectstatic", interactive=False, verbosity=0)
    check_credential_keys()
    ensure_admin()
    host, port = settings.HOST, settings.PORT
    print(f"chat2api serving on http://{host}:{port}/ (admin: http://{host}:{port}/admin/)", flush=True)
    argv = server_argv(host, port)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
