"""Test settings: the project's own, with the test database in a file the gateway process can open too."""

from chat2api_site.settings import *  # noqa: F403
from chat2api_site.settings import DATABASES, VAR_DIR

TEST_DATABASE = VAR_DIR / "test.sqlite3"
DATABASES["default"]["TEST"] = {"NAME": str(TEST_DATABASE)}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
