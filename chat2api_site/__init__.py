import sys

from chat2api_site.environment import report

# A bad setting stops any of our processes with one line instead of a traceback (see environment.py).
sys.excepthook = report

from chat2api_site.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
