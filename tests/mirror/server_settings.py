"""Settings of the gateway process the browser tests start: the project's own, except that static files
are served from the finders, since the test server runs without `collectstatic` (`chat2api_site.serve`
runs it in production)."""

from chat2api_site.settings import *  # noqa: F403
from chat2api_site.settings import MIDDLEWARE

WHITENOISE_USE_FINDERS = True
SESSIONS = MIDDLEWARE.index("django.contrib.sessions.middleware.SessionMiddleware")
if "mirror.security.secure_cookies" not in MIDDLEWARE:  # until settings.py lists it
    MIDDLEWARE.insert(SESSIONS, "mirror.security.secure_cookies")
