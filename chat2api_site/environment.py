"""Reading settings from the environment: one parse per variable, range checks, one line when wrong.

A value that cannot work raises `SettingError`, whose message is the whole report: the package installs
an exception hook (`chat2api_site/__init__.py`) that prints it as `chat2api: <message>` on one line, with
no traceback, in whichever process loaded the settings (manage.py, the ASGI servers, Celery).
A secret in a value is never shown: secret variables are hidden whole, URL passwords are masked.
"""

from __future__ import annotations

import math
import re
import sys
import warnings
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

env = environ.Env()

SECRET_NAMES = frozenset({"SECRET_KEY", "CREDENTIAL_KEYS", "AUTHORIZATION", "AUTH_KEY", "ADMIN_PASSWORD"})
BOOLEANS = frozenset({"true", "false", "1", "0", "yes", "no", "on", "off"})
EXPECTED = {
    "int": "expected a whole number",
    "float": "expected a number",
    "bool": "expected true or false",
    "json": "expected JSON",
    "list": "expected a comma-separated list",
    "str": "expected text",
}
DATABASE_EXAMPLE = (
    "expected a database URL such as postgres://user:pass@host:5432/chat2api or sqlite:////path/db.sqlite3"
)
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


class SettingError(ImproperlyConfigured):
    """A setting that cannot work. The message is one line that names the variable and what to do."""


def shown(name: str, raw: str) -> str:
    """The value as it may appear in a message: secret variables hidden, URL passwords masked."""
    if name in SECRET_NAMES:
        return "<hidden>"
    return URL_PASSWORD.sub(r"\1***@", raw)


def invalid(name: str, raw: str, why: str) -> SettingError:
    return SettingError(f"{name}={shown(name, raw)} is invalid: {why}")


def read(
    cast: str,
    name: str,
    default: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: Iterable[str] | None = None,
) -> Any:
    """One variable parsed with django-environ, then checked against its bounds or choices. A number set to
    nothing (`WEB_CONCURRENCY=` in an .env made from .env.example) means its default."""
    raw = env.str(name, default="")
    if cast in ("int", "float") and not raw.strip():
        return default
    if cast == "bool" and name in env.ENVIRON and raw.strip().lower() not in BOOLEANS:
        raise invalid(name, raw, EXPECTED["bool"])
    try:
        value = getattr(env, cast)(name, default=default)
    except (ValueError, TypeError, ImproperlyConfigured):
        raise invalid(name, raw, EXPECTED[cast]) from None
    if cast == "float" and not math.isfinite(value):
        raise invalid(name, raw, "expected a finite number")
    if minimum is not None and value < minimum:
        raise invalid(name, raw, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise invalid(name, raw, f"must be at most {maximum}")
    if choices is not None and value not in choices:
        raise invalid(name, raw, f"must be one of {', '.join(choices)}")
    return value


def database(name: str, default: str) -> dict[str, Any]:
    """A Django DATABASES entry from a URL; an empty value means the default."""
    raw = env.str(name, default="") or default
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # django-environ warns (a second line) before returning junk
            config = environ.Env.db_url_config(raw)
    except (ValueError, TypeError, KeyError):
        raise invalid(name, raw, DATABASE_EXAMPLE) from None
    if not str(config.get("ENGINE", "")).startswith("django.db.backends.") or not config.get("NAME"):
        raise invalid(name, raw, DATABASE_EXAMPLE)
    return config


def redis_url(name: str) -> str:
    """A Redis URL, or empty for none."""
    raw = env.str(name, default="")
    if not raw:
        return raw
    try:
        parts = urlsplit(raw)
        valid = parts.scheme in REDIS_SCHEMES and (parts.scheme == "unix" or bool(parts.hostname)) and parts.port != 0
    except ValueError:  # a port out of range
        valid = False
    if not valid:
        raise invalid(name, raw, "expected a URL such as redis://host:6379/0")
    return raw


def fernet_keys(name: str) -> list[str]:
    """Comma-separated Fernet keys, newest first."""
    keys = [key for key in read("list", name, []) if key]
    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise invalid(name, ",".join(keys), "expected Fernet keys (urlsafe base64 of 32 bytes)") from None
    return keys


def require_explicit(embedded: bool, **values: object) -> None:
    """Outside the embedded default, keys that a node would otherwise generate for itself must be set."""
    missing = [name for name, value in values.items() if not value]
    if missing and not embedded:
        raise SettingError(
            f"set {' and '.join(missing)}: with PostgreSQL or REDIS_URL every node and every redeploy must use the "
            'same keys, or stored credentials become unreadable (generate a key with: python -c "from '
            'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())")'
        )


def report(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """`sys.excepthook`: a `SettingError` is one line on stderr; anything else keeps its traceback."""
    if isinstance(exc, SettingError):
        print(f"chat2api: {exc}", file=sys.stderr)
    else:
        sys.__excepthook__(exc_type, exc, tb)
