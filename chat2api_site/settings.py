"""All configuration, read once from the environment (and an optional `.env`).

Every variable of the original chat2api keeps its name and default. A value that does not parse or is
out of range stops start-up with one line naming the variable and the value (chat2api_site/environment.py),
instead of failing on the first request.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from pathlib import Path

import environ

from chat2api_site import environment
from chat2api_site.environment import read as _read

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")


def _generated_secret_key() -> str:
    """The embedded default's SECRET_KEY: generated on first run into var/ (never committed)."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# --- The seed's variables -------------------------------------------------------------------------
API_PREFIX: str = _read("str", "API_PREFIX", "").strip("/")
AUTHORIZATION: list[str] = [c for c in _read("list", "AUTHORIZATION", []) if c]
AUTH_KEY: str = _read("str", "AUTH_KEY", "")
CHATGPT_BASE_URL: str = _read("str", "CHATGPT_BASE_URL", "https://chatgpt.com").rstrip("/")
PROXY_URL: list[str] = [p for p in _read("list", "PROXY_URL", []) if p]
EXPORT_PROXY_URL: str = _read("str", "EXPORT_PROXY_URL", "")
HISTORY_DISABLED: bool = _read("bool", "HISTORY_DISABLED", True)
RETRY_TIMES: int = _read("int", "RETRY_TIMES", 3, minimum=0, maximum=100)
CONVERSATION_ONLY: bool = _read("bool", "CONVERSATION_ONLY", False)
ENABLE_LIMIT: bool = _read("bool", "ENABLE_LIMIT", True)
UPLOAD_BY_URL: bool = _read("bool", "UPLOAD_BY_URL", False)
SCHEDULED_REFRESH: bool = _read("bool", "SCHEDULED_REFRESH", False)
RANDOM_TOKEN: bool = _read("bool", "RANDOM_TOKEN", True)
# How a pick chooses among ready credentials (tokens/pool.py): `auto` is `headroom` for codex accounts (the most
# plan quota left) and RANDOM_TOKEN's random or round-robin otherwise; `random` and `round_robin` override it.
POOL_STRATEGY: str = _read("str", "POOL_STRATEGY", "auto", choices=("auto", "random", "round_robin", "headroom"))
ENABLE_GATEWAY: bool = _read("bool", "ENABLE_GATEWAY", False)
ALLOW_RESET: bool = _read("bool", "ALLOW_RESET", True)

# --- RefreshToken exchange (auth.openai.com: auth0.openai.com has answered 404 since mid-2025) -------
OAUTH_TOKEN_URL: str = _read("str", "OAUTH_TOKEN_URL", "https://auth.openai.com/oauth/token")
OAUTH_CLIENT_ID: str = _read("str", "OAUTH_CLIENT_ID", "pdlLIX2Y72MIl2rhLhTE9VV9bN905kBh")
OAUTH_RT_TOKEN_URL: str = _read("str", "OAUTH_RT_TOKEN_URL", "https://auth.openai.com/oauth/token")
OAUTH_RT_CLIENT_ID: str = _read("str", "OAUTH_RT_CLIENT_ID", "app_LlGpXReQgckcGGUo2JrYvtJK")

# --- Codex: ChatGPT accounts signed in through OpenAI's Codex OAuth (kind `codex`) -----------------
CODEX_BASE_URL: str = _read("str", "CODEX_BASE_URL", "https://chatgpt.com/backend-api/codex").rstrip("/")
CODEX_AUTH_URL: str = _read("str", "CODEX_AUTH_URL", "https://auth.openai.com").rstrip("/")
CODEX_CLIENT_ID: str = _read("str", "CODEX_CLIENT_ID", "app_EMoamEEZ73f0CkXaXp7hrann")
CODEX_MODELS: list[str] = [
    m.strip()
    for m in _read(
        "list",
        "CODEX_MODELS",
        ["gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna", "gpt-5.5", "gpt-5.4", "gpt-5.4-mini", "gpt-5.3-codex-spark"],
    )
    if m.strip()
]

REFRESH_AHEAD_SECONDS: int = _read("int", "REFRESH_AHEAD_SECONDS", 24 * 3600, minimum=0)
REFRESH_JITTER_SECONDS: int = _read("int", "REFRESH_JITTER_SECONDS", 300, minimum=0)

# Fernet keys for credentials at rest, newest first; empty derives one from SECRET_KEY (tokens/crypto.py).
CREDENTIAL_KEYS: list[str] = environment.fernet_keys("CREDENTIAL_KEYS")

# --- Gateway tuning -------------------------------------------------------------------------------
MAX_REQUEST_BYTES: int = _read("int", "MAX_REQUEST_BYTES", 20 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
UPSTREAM_CONNECT_TIMEOUT: float = _read("float", "UPSTREAM_CONNECT_TIMEOUT", 10.0, minimum=0.1)
UPSTREAM_READ_TIMEOUT: float = _read("float", "UPSTREAM_READ_TIMEOUT", 120.0, minimum=0.1)
UPSTREAM_MAX_CLIENTS: int = _read("int", "UPSTREAM_MAX_CLIENTS", 1024, minimum=1)
DEFAULT_COOLDOWN_SECONDS: int = _read("int", "DEFAULT_COOLDOWN_SECONDS", 60, minimum=0)
CHALLENGE_COOLDOWN_SECONDS: int = _read("int", "CHALLENGE_COOLDOWN_SECONDS", 900, minimum=0)
# Outlier detection (tokens/health.py): transient failures (403, 5xx, timeouts, dropped or empty answers) eject a
# credential only when it stands out from the others serving the model over the window.
OUTLIER_CONSECUTIVE_FAILURES: int = _read("int", "OUTLIER_CONSECUTIVE_FAILURES", 5, minimum=1)
OUTLIER_MIN_REQUESTS: int = _read("int", "OUTLIER_MIN_REQUESTS", 5, minimum=1)
OUTLIER_WINDOW_SECONDS: float = _read("float", "OUTLIER_WINDOW_SECONDS", 60.0, minimum=1.0)
OUTLIER_BASE_EJECTION_SECONDS: float = _read("float", "OUTLIER_BASE_EJECTION_SECONDS", 30.0, minimum=0.1)
OUTLIER_MAX_EJECTION_SECONDS: float = _read("float", "OUTLIER_MAX_EJECTION_SECONDS", 300.0, minimum=0.1)
MAX_EJECTION_PERCENT: int = _read("int", "MAX_EJECTION_PERCENT", 50, minimum=0, maximum=100)
# Put reasoning into `content` as <think>…</think> instead of the `reasoning_content` field.
REASONING_INLINE: bool = _read("bool", "REASONING_INLINE", False)
# Pause before a stream that is still being prepared gets its first `: keep-alive` comment (and between them).
KEEPALIVE_SECONDS: float = _read("float", "KEEPALIVE_SECONDS", 5.0, minimum=0.1)
POOL_RELOAD_SECONDS: float = _read("float", "POOL_RELOAD_SECONDS", 0.5, minimum=0.01)
POOL_WAIT_SECONDS: float = _read("float", "POOL_WAIT_SECONDS", 10.0, minimum=0)
# A slot is leased for LEASE_TTL_SECONDS and renewed by its living process every third of that, so a
# crashed node frees its slots within the TTL; no lease is renewed past LEASE_SECONDS.
LEASE_SECONDS: float = _read("float", "LEASE_SECONDS", 600.0, minimum=1)
LEASE_TTL_SECONDS: float = _read("float", "LEASE_TTL_SECONDS", 20.0, minimum=0.1)
MODEL_MAP: dict[str, str] = _read("json", "MODEL_MAP", {})
HOST: str = _read("str", "HOST", "127.0.0.1")
PORT: int = _read("int", "PORT", 5005, minimum=1, maximum=65535)
ASGI_SERVER: str = _read("str", "ASGI_SERVER", "uvicorn", choices=("daphne", "uvicorn"))
ADMIN_USERNAME: str = _read("str", "ADMIN_USERNAME", "")
ADMIN_PASSWORD: str = _read("str", "ADMIN_PASSWORD", "")
REDIS_URL: str = environment.redis_url("REDIS_URL")
# uvicorn worker processes of `serve`: a core each when Redis holds the pool state they share; without it one,
# since each process would enforce every per-credential limit on its own.
WEB_CONCURRENCY: int = _read("int", "WEB_CONCURRENCY", len(os.sched_getaffinity(0)) if REDIS_URL else 1, minimum=1)
# Every Redis key this deployment writes (pool state, cache) starts with this, so deployments (and test runs)
# can share one Redis database without touching each other's keys.
REDIS_KEY_PREFIX: str = _read("str", "REDIS_KEY_PREFIX", "chat2api")
# Redis connections per process (pool state, and the cache), and the seconds to wait for a free one, to
# connect, or for a reply; past that the request gets a 503 instead of waiting or failing at random.
REDIS_MAX_CONNECTIONS: int = _read("int", "REDIS_MAX_CONNECTIONS", 50, minimum=1)
REDIS_TIMEOUT: float = _read("float", "REDIS_TIMEOUT", 5.0, minimum=0.1)
# A caller may send its own ChatGPT AccessToken or RefreshToken as the API key (the seed's behaviour).
ALLOW_OWN_TOKENS: bool = _read("bool", "ALLOW_OWN_TOKENS", True)
# Automatic `action: continue` requests for a ChatGPT answer cut at its token limit.
MAX_CONTINUES: int = _read("int", "MAX_CONTINUES", 3, minimum=0, maximum=100)
# Fetching user-supplied image and file URLs: size cap, and whether private addresses may be fetched.
FETCH_MAX_BYTES: int = _read("int", "FETCH_MAX_BYTES", 20 * 1024 * 1024, minimum=1)
FETCH_ALLOW_PRIVATE: bool = _read("bool", "FETCH_ALLOW_PRIVATE", False)
# How long a signed /v1/files/... link to a generated file stays valid, in seconds.
FILE_LINK_SECONDS: int = _read("int", "FILE_LINK_SECONDS", 24 * 3600, minimum=1)
# Stored responses (`previous_response_id`, GET/DELETE /v1/responses/{id}): kept this many seconds, and not stored
# when their JSON (the whole conversation and the response) is larger than RESPONSES_MAX_BYTES.
RESPONSES_TTL: int = _read("int", "RESPONSES_TTL", 30 * 24 * 3600, minimum=60)
RESPONSES_MAX_BYTES: int = _read("int", "RESPONSES_MAX_BYTES", 16 * 1024 * 1024, minimum=1)
# Client keys (`manage.py create_client_key`, the admin): how long a process trusts what it read of a key (an admin
# edit, e.g. disabling it, reaches every process within this), and how many tokens a request reserves of a key's
# budgets and tokens-per-minute while it runs when it sets no `max_tokens` (settled to what it used at its end).
CLIENT_KEY_CACHE_SECONDS: float = _read("float", "CLIENT_KEY_CACHE_SECONDS", 5.0, minimum=0)
RESERVE_TOKENS: int = _read("int", "RESERVE_TOKENS", 4096, minimum=1)
# The request log (every API request: key, model, credential, tokens, timings) is kept this many days; the daily
# roll-ups stay.
REQUEST_LOG_DAYS: int = _read("int", "REQUEST_LOG_DAYS", 30, minimum=1)
# The bearer a Prometheus scraper sends to GET /metrics; empty: no /metrics at all (404).
METRICS_TOKEN: str = _read("str", "METRICS_TOKEN", "")
# Where several worker processes keep their metrics (prometheus-client reads the variable itself, and set but empty
# would write into the working directory: empty means unset).
PROMETHEUS_MULTIPROC_DIR: str = _read("str", "PROMETHEUS_MULTIPROC_DIR", "")
if not PROMETHEUS_MULTIPROC_DIR:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
elif not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise environment.invalid("PROMETHEUS_MULTIPROC_DIR", PROMETHEUS_MULTIPROC_DIR, "expected an existing directory")

# --- Django ---------------------------------------------------------------------------------------
SECRET_KEY: str = _read("str", "SECRET_KEY", "")
DEBUG: bool = _read("bool", "DEBUG", False)
ALLOWED_HOSTS: list[str] = _read("list", "ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS: list[str] = _read("list", "CSRF_TRUSTED_ORIGINS", [])
CSRF_COOKIE_HTTPONLY = True  # the web page reads the token from a meta tag
# Reverse proxies (IPs or CIDRs) whose X-Forwarded-For names the client: the login throttles and the
# own-token throttle key on the client's address, which is the proxy's unless it is trusted here.
_proxies: list[str] = [p.strip() for p in _read("list", "TRUSTED_PROXIES", []) if p.strip()]
try:
    TRUSTED_PROXIES = tuple(ipaddress.ip_network(p, strict=False) for p in _proxies)
except ValueError:
    raise environment.invalid("TRUSTED_PROXIES", ",".join(_proxies), "expected IPs or CIDRs, e.g. 10.0.0.0/8") from None
if _read("bool", "BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# "daphne" only for `manage.py runserver` (its ASGI development server): as an app it loads Twisted into every process.
INSTALLED_APPS = [
    *(["daphne"] if sys.argv[1:2] == ["runserver"] else []),
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "tokens",
    "openai_compat",
    "mirror",
]

# The API routes (/v1/...) bypass this stack entirely: see chat2api_site/asgi.py.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "mirror.security.secure_cookies",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chat2api_site.urls"
ASGI_APPLICATION = "chat2api_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": environment.database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# The embedded default: SQLite and no Redis, one machine. Anything else is shared between nodes and
# redeploys, so keys generated by one node would make the others' credentials unreadable.
EMBEDDED: bool = DATABASES["default"]["ENGINE"].endswith("sqlite3") and not REDIS_URL
environment.require_explicit(EMBEDDED, SECRET_KEY=SECRET_KEY, CREDENTIAL_KEYS=CREDENTIAL_KEYS)
SECRET_KEY = SECRET_KEY or _generated_secret_key()
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL lets the request path read while the admin or a worker writes.
    DATABASES["default"].setdefault("OPTIONS", {})["init_command"] = "PRAGMA journal_mode=WAL;"
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
# Keep connections across requests and the pool's reload ticks (a new one per tick is a new PostgreSQL
# backend every POOL_RELOAD_SECONDS per process); a connection that broke meanwhile is replaced on next use.
DATABASES["default"]["CONN_MAX_AGE"] = _read("int", "DB_CONN_MAX_AGE", 300, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {
                "pool_class": "redis.BlockingConnectionPool",
                "max_connections": REDIS_MAX_CONNECTIONS,
                "timeout": REDIS_TIMEOUT,
                "socket_connect_timeout": REDIS_TIMEOUT,
                "socket_timeout": REDIS_TIMEOUT,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_KEY_PREFIX}:asgi"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE: str = _read("str", "TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOG_LEVEL: str = _read("str", "LOG_LEVEL", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"))
# `json`: one JSON object per line (common/logs.py). Either way every line carries its API request's id.
LOG_FORMAT: str = _read("str", "LOG_FORMAT", "plain", choices=("plain", "json"))
LOGGING_CONFIG = "common.logs.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "common.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
        "json": {"()": "common.logs.JSONFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # uvicorn's come with handlers of their own, which would write plain lines into a JSON log.
        "uvicorn": {"handlers": ["console"], "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "propagate": False},
    },
}

# --- Celery (tokens/tasks.py); the schedule appears in the admin through django-celery-beat ---------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, str | bool] = {"global_keyprefix": f"{REDIS_KEY_PREFIX}:celery:"}
else:
    _QUEUE_DIR = VAR_DIR / "celery"
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_QUEUE_DIR),
        "data_folder_out": str(_QUEUE_DIR),
        "processed_folder": str(_QUEUE_DIR / "done"),
        "store_processed": False,
    }
    (_QUEUE_DIR / "done").mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True
# Worker and beat log through LOGGING (LOG_FORMAT=json included, with the request-id filter), not Celery's own handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "refresh-due-credentials": {
        "task": "tokens.tasks.refresh_due",
        "schedule": 300.0,
        "options": {"expire_seconds": 240},
    },
    "prune-request-log": {
        "task": "tokens.tasks.prune_request_log",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3000},
    },
    "prune-stored-responses": {
        "task": "openai_compat.tasks.prune_responses",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3000},
    },
}
if SCHEDULED_REFRESH:
    from celery.schedules import crontab

    CELERY_BEAT_SCHEDULE["forced-refresh"] = {
        "task": "tokens.tasks.refresh_all",
        "schedule": crontab(minute=0, hour=3, day_of_month="*/4"),
        "options": {"expire_seconds": 3600},
    }
