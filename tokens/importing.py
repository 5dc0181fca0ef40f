"""Import credentials from pasted text or a file, one a line.

    <AccessToken or RefreshToken>[,<ChatGPT-Account-ID>]      a ChatGPT account
    openai <base_url> <api_key> [model,model,...]             an OpenAI-compatible API key

A token's kind is recognised by its shape (`tokens.shapes`); a line that is no credential, or an
AccessToken that has already expired (alone it can never work again), is refused. Blank lines and lines
starting with `#` are skipped. A bad line is reported by number with a reason that never shows the
secret in full; every good line is still imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from tokens import shapes
from tokens.models import Credential, Kind, Status, mask
from tokens.refresh import jwt_expiry

OPENAI_USAGE = "expected: openai <base_url> <api_key> [model,model,...]"
CHATGPT_USAGE = "expected an AccessToken (eyJ…), a RefreshToken (rt_… or about 45 characters) or an `openai` line"
_url_validator = URLValidator(schemes=["http", "https"])


class LineError(ValueError):
    """Why one line cannot be imported; the message is safe to show (secrets are masked)."""


@dataclass(frozen=True)
class Entry:
    """One parsed line. `models` is None when an `openai` line gave no model list."""

    line_no: int
    kind: str
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    account_id: str = ""
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    models: tuple[str, ...] | None = None

    def credential(self) -> Credential:
        """An unsaved row; its `compute_fingerprint()` is the one `Credential.save()` stores."""
        return Credential(
            kind=self.kind,
            access_token=self.access_token,
            refresh_token=self.refresh_token,
            account_id=self.account_id,
            base_url=self.base_url,
            api_key=self.api_key,
            model_names=list(self.models or ()),
        )


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def counts(self) -> str:
        dupes = "duplicate" if self.skipped == 1 else "duplicates"
        return f"{self.created} created, {self.updated} updated, {self.skipped} {dupes} skipped"

    def __str__(self) -> str:
        return "; ".join([self.counts, *(f"line {n}: {reason}" for n, reason in self.errors)])


def parse(text: str) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Split `text` into entries and `(line_no, reason)` errors; touches no database."""
    entries: list[Entry] = []
    errors: list[tuple[int, str]] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entries.append(parse_line(line_no, line))
        except LineError as exc:
            errors.append((line_no, str(exc)))
    return entries, errors


def parse_line(line_no: int, line: str) -> Entry:
    parts = line.split(maxsplit=3)
    if parts[0].lower() == "openai":
        return _parse_openai(line_no, parts[1:])
    return _parse_chatgpt(line_no, line)


def _parse_openai(line_no: int, parts: list[str]) -> Entry:
    if len(parts) < 2:
        raise LineError(f"missing {'API key' if parts else 'base URL and API key'}; {OPENAI_USAGE}")
    base_url, api_key = parts[0].rstrip("/"), parts[1]
    try:
        _url_validator(base_url)
    except ValidationError:
        raise LineError(f"base URL is not an http(s) URL (key {mask(api_key)}); {OPENAI_USAGE}") from None
    if len(base_url) > Credential._meta.get_field("base_url").max_length:
        raise LineError("base URL is too long")
    models = tuple(m for m in re.split(r"[,\s]+", parts[2]) if m) if len(parts) > 2 else None
    return Entry(line_no, Kind.OPENAI, base_url=base_url, api_key=api_key, models=models or None)


def _parse_chatgpt(line_no: int, line: str) -> Entry:
    token, _, account_id = (s.strip() for s in line.partition(","))
    if not token:
        raise LineError("missing token before the comma")
    if len(token.split()) > 1 or len(account_id.split()) > 1:
        raise LineError(f"unexpected spaces in {mask(token.split()[0])}; an API key line starts with `openai`")
    if "," in account_id:
        raise LineError(f"too many commas after {mask(token)}; expected <token>[,<ChatGPT-Account-ID>]")
    if len(account_id) > Credential._meta.get_field("account_id").max_length:
        raise LineError(f"ChatGPT-Account-ID is too long (token {mask(token)})")
    if token.startswith("sk-"):
        raise LineError(f"{mask(token)} looks like an API key; use: openai <base_url> <api_key>")
    if token.startswith("eyJ"):
        return Entry(line_no, Kind.CHATGPT, access_token=_access_token(token), account_id=account_id)
    if not shapes.is_refresh_token(token):
        raise LineError(f"not a recognised credential ({mask(token)}); {CHATGPT_USAGE}")
    return Entry(line_no, Kind.CHATGPT, refresh_token=token, account_id=account_id)


def _access_token(token: str) -> str:
    """`token` if it is an AccessToken that still works: alone (no RefreshToken), an expired one never will."""
    expires = jwt_expiry(token) if shapes.is_access_token(token) else None
    if expires is None:
        raise LineError(f"{mask(token)} starts like an AccessToken but is not a JWT (header.payload.signature)")
    if expires <= timezone.now():
        when = expires.strftime("%Y-%m-%d %H:%M UTC")
        raise LineError(f"AccessToken {mask(token)} expired on {when}; import it with its RefreshToken or a fresh one")
    return token


def import_credentials(text: str) -> ImportResult:
    """Parse `text` and write its good lines in one transaction.

    A line whose fingerprint is already stored (also one repeated in the same text) is a duplicate: the row
    is left as it is, with one exception, an `openai` line that lists models different from the stored
    ones, which replaces the row's model list and counts as updated. A re-imported credential that had
    failed authentication (`invalid`) is revived when `ALLOW_RESET` is on, and counts as updated. Cooldowns
    and counters are never touched by an import.
    """
    entries, errors = parse(text)
    result = ImportResult(errors=errors)
    with transaction.atomic():
        for entry in entries:
            _store(entry, result)
    return result


def _store(entry: Entry, result: ImportResult) -> None:
    new = entry.credential()
    existing = Credential.objects.filter(fingerprint=new.compute_fingerprint()).first()
    if existing is None:
        new.save()
        result.created += 1
        return
    revive = settings.ALLOW_RESET and existing.status == Status.INVALID
    relist = entry.models is not None and list(entry.models) != existing.model_names
    if not (revive or relist):
        result.skipped += 1
        return
    if revive:
        existing.status, existing.last_error = Status.ACTIVE, ""
    if relist:
        existing.model_names = list(entry.models)
    existing.save(update_fields=["status", "last_error", "model_names", "updated_at"])
    result.updated += 1
