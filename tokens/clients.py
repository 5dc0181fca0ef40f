"""Client keys: the keys the operator hands to the gateway's users, each with its limits (`tokens.limits`).

A key is `sk-c2a-` and 32 random bytes; only its sha256 is stored. The key carries 190+ bits of randomness, so a
plain digest cannot be reversed by guessing, needs no salt, and does not change when `SECRET_KEY` is rotated.
`lookup` is on every request's path: it keeps what it read of a digest (a policy, or "no such key") for
`CLIENT_KEY_CACHE_SECONDS`, in a bounded cache, so a flood of random keys costs memory only up to that bound.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from common.db import in_thread
from tokens.models import ClientKey

KEY_PREFIX = "sk-c2a-"
SHOWN_PREFIX = 12  # characters of a key kept in `ClientKey.prefix`
MAX_GLOB = 200  # the length of a model name in the request log
MAX_CACHED = 10_000  # digests per cache (known keys, unknown ones)


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What the request path needs of a client key; every limit 0 means unlimited."""

    id: int
    name: str
    allowed_models: tuple[str, ...] = ()
    rpm: int = 0
    tpm: int = 0
    max_concurrency: int = 0
    daily_tokens: int = 0
    monthly_tokens: int = 0
    expires_at: float | None = None  # epoch seconds

    @classmethod
    def from_model(cls, row: ClientKey) -> KeyPolicy:
        return cls(
            id=row.pk,
            name=row.name,
            allowed_models=tuple(row.allowed_models),
            rpm=row.rpm,
            tpm=row.tpm,
            max_concurrency=row.max_concurrency,
            daily_tokens=row.daily_tokens,
            monthly_tokens=row.monthly_tokens,
            expires_at=row.expires_at.timestamp() if row.expires_at else None,
        )

    def allows(self, model: str) -> bool:
        return not self.allowed_models or any(fnmatchcase(model, glob) for glob in self.allowed_models)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def unlimited(self) -> bool:
        return not (self.rpm or self.tpm or self.max_concurrency or self.daily_tokens or self.monthly_tokens)


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_globs(text: str) -> list[str]:
    """Model names or globs as an operator types them: separated by commas or whitespace."""
    return clean_globs(text.replace(",", " ").split())


def clean_globs(globs: Any) -> list[str]:
    if not isinstance(globs, list) or not all(isinstance(glob, str) for glob in globs):
        raise ValidationError("Give a list of model names or globs.")
    cleaned = [glob.strip() for glob in globs]
    for glob in cleaned:
        if not glob or len(glob) > MAX_GLOB or any(char.isspace() or char == "," for char in glob):
            raise ValidationError(f"Not a model name or glob: {glob[:MAX_GLOB]!r}.")
    return list(dict.fromkeys(cleaned))


def create_key(name: str, **limits: Any) -> tuple[ClientKey, str]:
    """Save a new client key; returns the row and the key itself, which exists nowhere else afterwards.
    `limits` are `ClientKey` fields (allowed_models, rpm, …, expires_at, enabled); raises ValidationError."""
    row = ClientKey(name=name.strip(), **limits)
    try:
        row.allowed_models = clean_globs(row.allowed_models)
    except ValidationError as exc:
        raise ValidationError({"allowed_models": exc.messages}) from exc
    row.full_clean(exclude=["prefix", "digest"])
    return row, issue_key(row)


def issue_key(row: ClientKey) -> str:
    """Give a new, validated row its key and save it; returns the key (the admin's form validates on its own)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row.prefix, row.digest = key[:SHOWN_PREFIX], digest_of(key)
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError as exc:  # the same name saved meanwhile
        raise ValidationError({"name": "A client key with this name already exists."}) from exc
    return key


def set_enabled(keys: QuerySet[ClientKey], enabled: bool) -> int:
    return keys.update(enabled=enabled, updated_at=timezone.now())


def describe_limits(row: ClientKey | KeyPolicy) -> str:
    """The limits on one line, e.g. "60 req/min · 100k tok/min · 5 at once · 1M/day"."""
    parts = [
        (row.rpm, "req/min"),
        (row.tpm, "tok/min"),
        (row.max_concurrency, "at once"),
        (row.daily_tokens, "/day"),
        (row.monthly_tokens, "/month"),
    ]
    shown = [f"{_short(n)}{'' if unit.startswith('/') else ' '}{unit}" for n, unit in parts if n]
    return " · ".join(shown) or "unlimited"


def _short(n: int) -> str:
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + suffix
    return str(n)


# -- lookup: the hot path ----------------------------------------------------------------------------
class _Cache:
    """Digest → (policy or None, monotonic time it is trusted until); the oldest entry goes first when full."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.entries: dict[str, tuple[KeyPolicy | None, float]] = {}

    def put(self, digest: str, policy: KeyPolicy | None, until: float) -> None:
        self.entries.pop(digest, None)
        if len(self.entries) >= self.size:
            del self.entries[next(iter(self.entries))]
        self.entries[digest] = (policy, until)


# Known keys and unknown ones apart, so that random keys only ever push out other random keys.
_known, _unknown = _Cache(MAX_CACHED), _Cache(MAX_CACHED)


async def lookup(key: str) -> KeyPolicy | None:
    """The policy of an enabled, unexpired client key; None for anything else (a string without the client key
    prefix is not looked up at all). An admin edit is seen within `CLIENT_KEY_CACHE_SECONDS`; expiry at once."""
    if not key.startswith(KEY_PREFIX):
        return None
    digest, now = digest_of(key), time.monotonic()
    entry = _known.entries.get(digest) or _unknown.entries.get(digest)
    if entry is None or entry[1] <= now:
        policy = await in_thread(_read, digest)
        (_known if policy else _unknown).put(digest, policy, now + settings.CLIENT_KEY_CACHE_SECONDS)
        (_unknown if policy else _known).entries.pop(digest, None)
    else:
        policy = entry[0]
    return None if policy is None or policy.expired(time.time()) else policy


def _read(digest: str) -> KeyPolicy | None:
    row = ClientKey.objects.filter(digest=digest, enabled=True).first()
    return KeyPolicy.from_model(row) if row else None
