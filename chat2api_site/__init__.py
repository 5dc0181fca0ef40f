__version__ = "0.1.0"

from chat2api_site.celery import app as celery_app  # noqa: E402

__all__ = ["__version__", "celery_app"]
