"""Test settings: the project's own, with the test database in a file the gateway process can open too."""

import os

# Fixed keys for every process a test starts: outside the embedded default (PostgreSQL, REDIS_URL) start-up
# refuses to run without them, and all processes of a test must read each other's credentials.
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("CREDENTIAL_KEYS", "dGVzdC1jcmVkZW50aWFsLWtleS0zMi1ieXRlcy0xMjM=")

from chat2api_site.settings import *  # noqa: F403
from chat2api_site.settings import DATABASES, VAR_DIR

# One file per test session, so that concurrent sessions never share (or delete) each other's database.
TEST_DATABASE = VAR_DIR / f"test-{os.getpid()}.sqlite3"
DATABASES["default"]["TEST"] = {"NAME": str(TEST_DATABASE)}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
