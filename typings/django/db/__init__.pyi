# Only `django.db.models` is typed here (see its stub); everything else in Django stays Any.
from typing import Any

def __getattr__(name: str) -> Any: ...
