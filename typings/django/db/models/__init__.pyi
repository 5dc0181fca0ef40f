# Django ships no type hints, and django-stubs needs the settings imported (a slow lint). This stub types only the
# choice enums, so that `Kind.CODEX` is a `Kind` (a str), not the `(value, label)` tuple its class body shows. The
# rest of `django.db.models` stays Any through `__getattr__`.
import enum
from typing import Any

class ChoicesType(enum.EnumMeta):
    @property
    def choices(cls) -> list[tuple[Any, str]]: ...
    @property
    def values(cls) -> list[Any]: ...

# The bases have no members of their own; mypy flags any memberless enum in a stub.
class Choices(enum.Enum, metaclass=ChoicesType):  # type: ignore[misc]
    @property
    def label(self) -> str: ...

class TextChoices(str, Choices):  # type: ignore[misc]
    @property
    def value(self) -> str: ...

def __getattr__(name: str) -> Any: ...
