"""Test settings: the project's own, with the test database in a file the gateway process can open too."""

import os

from chat2api_site.settings import *  # noqa: F403
from chat2api_site.settings import DATABASES, VAR_DIR

# One file per test session, so that concurrent sessions never share (or delete) each other's database.
TEST_DATABASE = VAR_DIR / f"test-{os.getpid()}.sqlite3"
DATABASES["default"]["TEST"] = {"NAME": str(TEST_DATABASE)}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
