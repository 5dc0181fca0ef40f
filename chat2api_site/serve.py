"""`make run` / the Procfile's web process: migrate, make sure an admin can log in, then serve.

The ASGI server is daphne unless `ASGI_SERVER=uvicorn`; both serve the same application.
"""

from __future__ import annotations

import os
import sys

import django
from django.conf import settings
from django.core.management import call_command

ADMIN_HINT = (
    "No admin account exists yet. Create one with:\n"
    "    .venv/bin/python manage.py createsuperuser\n"
    "or set ADMIN_USERNAME and ADMIN_PASSWORD before starting."
)


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
    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    ensure_admin()
    host, port = settings.HOST, settings.PORT
    print(f"chat2api serving on http://{host}:{port}/ (admin: http://{host}:{port}/admin/)", flush=True)
    argv = server_argv(host, port)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
